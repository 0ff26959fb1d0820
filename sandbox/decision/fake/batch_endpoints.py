"""The Message Batches endpoints: create, retrieve, list, cancel, delete and results."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import httpx2

from sandbox.decision.fake.batches import final_results, view
from sandbox.decision.fake.errors import ApiError, error_body, random_hex, request_id
from sandbox.decision.fake.limits import CUSTOM_ID, MAX_BATCH_REQUESTS
from sandbox.decision.fake.messages import TRANSIENT, user_key
from sandbox.decision.fake.validation import check_message

if TYPE_CHECKING:
    from sandbox.decision.fake.server import FakeMessagesAPI

__all__ = [
    "base_url",
    "batch_results",
    "cancel_batch",
    "create_batch",
    "delete_batch",
    "list_batches",
    "retrieve_batch",
]


def base_url(request: httpx2.Request) -> str:
    """The address the client used, up to ``/v1/messages`` (for ``results_url``)."""
    prefix = request.url.path.split("/v1/messages")[0]
    return f"{request.url.scheme}://{request.url.netloc.decode()}{prefix}"


def _check_requests(body: dict) -> list[dict]:
    """The batch's ``requests``, or a 400 for the problems the API reports at create."""
    for key in body:
        if key not in ("requests", "user_profile_id"):
            raise ApiError.invalid(f"{key}: Extra inputs are not permitted")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise ApiError.invalid("requests: at least one request is required")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise ApiError.invalid(
            f"requests: a batch holds at most {MAX_BATCH_REQUESTS:,} requests, "
            f"got {len(requests):,}"
        )
    seen: set[str] = set()
    for i, item in enumerate(requests):
        if not isinstance(item, dict):
            raise ApiError.invalid(f"requests.{i}: Input should be an object")
        for key in item:
            if key not in ("custom_id", "params"):
                raise ApiError.invalid(f"requests.{i}.{key}: Extra inputs are not permitted")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise ApiError.invalid(
                f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if custom_id in seen:
            raise ApiError.invalid(
                f"requests.{i}.custom_id: custom_id {custom_id!r} is used more than once; "
                "each request in a batch needs a unique custom_id"
            )
        seen.add(custom_id)
        if not isinstance(item.get("params"), dict):
            raise ApiError.invalid(f"requests.{i}.params: Input should be an object")
    return requests


def create_batch(
    api: FakeMessagesAPI, request: httpx2.Request, body: dict, info: dict
) -> httpx2.Response:
    """``POST /v1/messages/batches``: store the batch (answers decided now, shown when it ends)."""
    api.request_fault(body)
    requests = _check_requests(body)
    batch_id = "msgbatch_mock_" + random_hex(24)
    info["batch_id"], info["batch_requests"] = batch_id, len(requests)
    results = [_result(api, batch_id, item) for item in requests]
    results.sort(key=lambda r: hashlib.sha256(r["custom_id"].encode()).hexdigest())
    state = {
        "id": batch_id,
        "created_at": api.now(),
        "batch_seconds": api.batch_seconds,
        "cancel_initiated_at": None,
    }
    api.batches.create(state, results)
    attempt = int(request.headers.get("x-stainless-retry-count") or 0)
    lost = api.faults.active("batch_create") and api.faults.pick(
        "batch_create", json.dumps(body, sort_keys=True), attempt
    )
    if lost == "batch_create_lost":
        info["fault"] = lost
        raise ApiError(500, "api_error", "Internal server error")
    if lost == "batch_create_timeout":
        info["fault"] = lost
        raise httpx2.ReadTimeout(
            "mock: read timed out after the batch was created", request=request
        )
    return httpx2.Response(200, json=view(state, api.now(), base_url(request), hold=True))


def _result(api: FakeMessagesAPI, batch_id: str, item: dict) -> dict:
    """One request's result: ``succeeded``, or ``errored`` / ``expired`` / ``canceled``."""
    params, custom_id = item["params"], item["custom_id"]

    def errored(kind: str, message: str) -> dict:
        error = error_body(kind, message, request_id())
        return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}

    try:
        model = check_message(params, api.prices, in_batch=True)
    except ApiError as exc:
        return errored(exc.kind, exc.message)
    user = user_key(params)
    if (message := api.invalid_for(user)) is not None:
        return errored("invalid_request_error", message)
    if kind := api.faults.pick("batch", batch_id, custom_id):
        return {"custom_id": custom_id, "result": {"type": kind}}
    kind = api.faults.pick("transient", batch_id, custom_id, model.id)
    if kind in ("overloaded", "server_error", "timeout"):  # a batch queues: no 429s
        _, error_type, message = TRANSIENT[kind]
        return errored(error_type, message)
    message = api.message(params, user)
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}


def list_batches(api: FakeMessagesAPI, request: httpx2.Request) -> httpx2.Response:
    """``GET /v1/messages/batches``: newest first, paged by ``limit``/``after_id``/``before_id``."""
    query = dict(request.url.params)
    return httpx2.Response(200, json=api.batches.page(query, api.now(), base_url(request)))


def retrieve_batch(
    api: FakeMessagesAPI, request: httpx2.Request, batch_id: str, info: dict
) -> httpx2.Response:
    """``GET /v1/messages/batches/{id}``."""
    if api.faults.pick("batch_poll", batch_id):
        info["fault"] = "batch_poll_error"
        raise ApiError(500, "api_error", "Internal server error")
    state, first = api.batches.first_retrieve(batch_id)
    return httpx2.Response(200, json=view(state, api.now(), base_url(request), hold=first))


def cancel_batch(api: FakeMessagesAPI, request: httpx2.Request, batch_id: str) -> httpx2.Response:
    """``POST /v1/messages/batches/{id}/cancel``."""
    now = api.now()
    state = api.batches.cancel(batch_id, now)
    return httpx2.Response(200, json=view(state, now, base_url(request)))


def delete_batch(api: FakeMessagesAPI, batch_id: str) -> httpx2.Response:
    """``DELETE /v1/messages/batches/{id}``: only once the batch has ended."""
    state = api.batches.get(batch_id)
    if view(state, api.now(), "")["processing_status"] != "ended":
        raise ApiError.invalid(
            f"message batch {batch_id} is still processing: cancel it and wait for it "
            "to end before deleting it"
        )
    api.batches.delete(batch_id)
    return httpx2.Response(200, json={"id": batch_id, "type": "message_batch_deleted"})


def batch_results(api: FakeMessagesAPI, batch_id: str, info: dict) -> httpx2.Response:
    """``GET /v1/messages/batches/{id}/results``: JSONL, once ended and until archived."""
    if api.faults.pick("batch_results", batch_id):
        info["fault"] = "batch_results_error"
        raise ApiError(500, "api_error", "Internal server error")
    state = api.batches.get(batch_id)
    shown = view(state, api.now(), "")
    if shown["processing_status"] != "ended":
        raise ApiError(
            404,
            "not_found_error",
            f"message batch {batch_id} has no results yet: it is {shown['processing_status']}",
        )
    if shown["archived_at"] is not None:
        raise ApiError(
            404,
            "not_found_error",
            f"the results of message batch {batch_id} were deleted at "
            f"{shown['archived_at']} (29 days after creation)",
        )
    results = final_results(state, api.batches.results(batch_id))
    lines = "".join(json.dumps(r) + "\n" for r in results)
    return httpx2.Response(
        200, content=lines.encode(), headers={"content-type": "application/x-jsonl"}
    )
