"""A deterministic stand-in for the Anthropic Messages API, served through an HTTP transport.

Offline mode builds the real ``anthropic.Anthropic`` client and swaps only its transport
(:func:`sandbox.decision.fake.http_client`), so request building, response parsing,
retries and error classes are the SDK's own.

Endpoints: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``,
``POST /v1/messages/batches``, ``GET /v1/messages/batches`` (newest first; ``limit``,
``after_id``, ``before_id``), ``GET /v1/messages/batches/{id}``,
``POST /v1/messages/batches/{id}/cancel``, ``DELETE /v1/messages/batches/{id}`` and
``GET /v1/messages/batches/{id}/results`` (JSONL, only once the batch has ended).

Like the real API
-----------------
* Every request needs an API key (``x-api-key`` or ``Authorization: Bearer``; 401
  ``authentication_error`` without) and an ``anthropic-version`` header (400 without).
* Every response carries a ``request-id`` header and the rate-limit headers
  (:mod:`~sandbox.decision.fake.limits`); errors have the API's JSON shape with the same
  ``request_id``.
* Bodies above 32 MB (256 MB for a batch) get 413 ``request_too_large``.
* Parameters are checked as strictly as the API does (:mod:`~sandbox.decision.fake.validation`):
  unknown or removed parameters and unsupported schema keywords are 400s, an unknown model
  a 404. Inside a batch the same problems are not reported at create: they come back as
  ``errored`` results when the batch ends (:mod:`~sandbox.decision.fake.batches`).

Rules a learner can predict
---------------------------
* **Answers** follow the table in :mod:`sandbox.decision.fake.answers`; the wording varies
  per user (deterministically). The escalation model gives the same type with
  confidence + 0.05.
* **Tokens**: input = ceil(characters / 4) over the system prompt, the messages and the
  JSON schema (when ``output_config.format`` is sent); output = ceil(answer characters / 4).
  ``count_tokens`` returns the same input number. An answer longer than ``max_tokens``
  tokens is cut at ``max_tokens * 4`` characters with ``stop_reason="max_tokens"``.
* **Thinking**: a model with adaptive thinking on by default thinks unless the request
  turns it down (:mod:`~sandbox.decision.fake.thinking`); thinking tokens count against
  ``max_tokens`` and come back as a ``thinking`` block before the text.
* **Latency**: every ``POST /v1/messages`` sleeps ``SANDBOX_MOCK_LATENCY_MS`` (default 0).
  A batch processes for ``SANDBOX_MOCK_BATCH_SECONDS`` (default 0.2).
* **Clock**: ``SANDBOX_MOCK_CLOCK_OFFSET_S`` moves the fake's clock forward (e.g. 2592000
  = 30 days, to see a batch's results deleted).

Seeded faults (``SANDBOX_MOCK_FAULTS``, parsed by :mod:`~sandbox.decision.fake.faults`)
--------------------------------------------------------------------------------------
* transient, keyed by (user, model), on the **first attempt only**
  (``x-stainless-retry-count`` 0), so the SDK's retry succeeds: ``rate_limit`` (429 +
  ``retry-after``), ``overloaded`` (529), ``server_error`` (500), ``timeout`` (the transport
  raises a read timeout), ``slow`` (the answer is produced and billed, but takes ``slow_s``
  seconds, by default longer than the client's read timeout: the client times out after
  waiting its timeout). In a batch ``overloaded``, ``server_error`` and ``timeout`` end as
  ``errored`` results keyed by (batch, request); a batch queues instead of rate limiting.
* answer, keyed by user, on **every** attempt (a re-run gets the same bad answer):
  ``malformed`` (prose around the JSON), ``out_of_range`` (confidence given as a
  percentage), ``wrong_enum`` (an unknown recommendation type), ``max_tokens`` (a cut-off
  answer), ``refusal`` (``stop_reason="refusal"``), ``unsafe`` (markup, instructions, a URL
  or a refund promise in the text: :data:`~sandbox.decision.fake.answers.UNSAFE_ANSWERS`).
* ``invalid_request``, keyed by user: a 400 ``invalid_request_error`` on every attempt in
  realtime; in a batch an ``errored`` result with that error when the batch ends.
* request, keyed by the request body: ``auth`` (401) and ``bad_request`` (400).
* batch, keyed by (batch, request): ``expired`` and ``canceled`` results.
* ``batch_create_lost`` / ``batch_create_timeout``, keyed by (body, attempt): the batch IS
  created and stored, but the client gets a 500 ``api_error`` / a read timeout. The SDK
  retries a create blindly, so each retry makes another batch.
* ``batch_poll_error`` / ``batch_results_error``, keyed by batch: every retrieve / every
  results download of that batch is a 500 ``api_error``.
* ``rpm=N``: at most N requests per sliding 60 s, then 429 with a realistic ``retry-after``.

The user key is ``metadata.user_id`` (an opaque hash the engine sends), or the last user
message when there is none. Set ``SANDBOX_MOCK_REQUEST_LOG`` to a file path to append one
JSON line per HTTP request answered (tests count requests with it, across processes).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2

from sandbox.config import SandboxError
from sandbox.decision.fake.answers import WORDINGS, recommend, unsafe_answer
from sandbox.decision.fake.batches import BatchStore, final_results, view
from sandbox.decision.fake.errors import ApiError, error_body, random_hex, request_id
from sandbox.decision.fake.faults import Faults, uniform
from sandbox.decision.fake.limits import (
    CUSTOM_ID,
    MAX_BATCH_BYTES,
    MAX_BATCH_REQUESTS,
    MAX_REQUEST_BYTES,
    RateWindow,
)
from sandbox.decision.fake.thinking import thinking_tokens
from sandbox.decision.fake.validation import check_count_tokens, check_message
from sandbox.decision.pricing import PriceBook, load_price_book

__all__ = ["DEFAULT_BATCH_SECONDS", "FakeMessagesAPI"]

DEFAULT_BATCH_SECONDS = 0.2
_TRANSIENT = {
    "rate_limit": (429, "rate_limit_error", "mock rate limit: too many requests, retry shortly"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "timeout": (504, "timeout_error", "mock timeout: the request took too long"),
}
_BATCH_PATH = re.compile(r"/v1/messages/batches/([^/]+)(/results|/cancel)?$")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _env_float(name: str, default: float, example: str) -> float:
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise SandboxError(f"{name}={raw!r} is not a number of {example}")
    return value


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


class FakeMessagesAPI:
    """The fake's state (settings, faults, stored batches, rate window) and its handler."""

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        faults: Faults | None = None,
        state_dir: Path | None = None,
        request_log: Path | None = None,
        prices: PriceBook | None = None,
        batch_seconds: float = DEFAULT_BATCH_SECONDS,
        clock_offset_s: float = 0.0,
        clock: Callable[[], float] | None = None,
    ):
        self.latency_s = max(0.0, latency_ms) / 1000
        self.faults = faults or Faults()
        self.batches = BatchStore(state_dir)
        self.request_log = Path(request_log) if request_log else None
        self.prices = prices or load_price_book()
        self.batch_seconds = max(0.0, batch_seconds)
        self.clock_offset_s = clock_offset_s
        self._clock = clock or time.time
        self.window = RateWindow(self.faults.rpm)
        self._log_lock = threading.Lock()

    @property
    def state_dir(self) -> Path | None:
        """Where batches are kept (``None``: in memory)."""
        return self.batches.state_dir

    @classmethod
    def from_env(cls, state_dir: Path | None = None) -> FakeMessagesAPI:
        """Settings from the ``SANDBOX_MOCK_*`` variables (see the module docstring)."""
        return cls(
            latency_ms=_env_float("SANDBOX_MOCK_LATENCY_MS", 0.0, "milliseconds (e.g. 50)"),
            faults=Faults.parse(os.environ.get("SANDBOX_MOCK_FAULTS")),
            state_dir=state_dir,
            request_log=Path(p) if (p := os.environ.get("SANDBOX_MOCK_REQUEST_LOG")) else None,
            batch_seconds=_env_float(
                "SANDBOX_MOCK_BATCH_SECONDS", DEFAULT_BATCH_SECONDS, "seconds (e.g. 0.2, or 0)"
            ),
            clock_offset_s=_env_float(
                "SANDBOX_MOCK_CLOCK_OFFSET_S", 0.0, "seconds (e.g. 2592000 for 30 days)"
            ),
        )

    def now(self) -> float:
        """The fake's clock: epoch seconds, moved by the clock offset."""
        return self._clock() + self.clock_offset_s

    # -- transport entry point -------------------------------------------------------------

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one HTTP request the way the Messages API would."""
        path = request.url.path.rstrip("/")
        info: dict[str, Any] = {"method": request.method, "path": path}
        rid = request_id()
        try:
            response = self._route(request, path, info)
        except ApiError as exc:
            response = httpx2.Response(
                exc.status, json=error_body(exc.kind, exc.message, rid), headers=exc.headers
            )
        except httpx2.TimeoutException:
            info["status"] = "timeout"
            self._log(info)
            raise
        response.headers["request-id"] = rid
        response.headers.update(self.window.headers(self.now()))
        info["status"] = response.status_code
        self._log(info)
        return response

    def _route(self, request: httpx2.Request, path: str, info: dict) -> httpx2.Response:
        method = request.method
        batch_create = method == "POST" and path.endswith("/v1/messages/batches")
        limit = MAX_BATCH_BYTES if batch_create else MAX_REQUEST_BYTES
        if len(request.content or b"") > limit:
            raise ApiError(
                413,
                "request_too_large",
                f"Request exceeds the maximum allowed number of bytes ({limit:,}).",
            )
        self._check_headers(request)
        if method == "POST" and path.endswith("/v1/messages/count_tokens"):
            return self._count_tokens(self._json(request))
        if batch_create:
            return self._create_batch(request, self._json(request), info)
        if method == "GET" and path.endswith("/v1/messages/batches"):
            query = dict(request.url.params)
            return httpx2.Response(200, json=self.batches.page(query, self.now(), _base(request)))
        match = _BATCH_PATH.search(path)
        if match:
            batch_id, tail = match.group(1), match.group(2)
            info["batch_id"] = batch_id
            if method == "GET" and tail == "/results":
                return self._batch_results(batch_id, info)
            if method == "GET" and tail is None:
                return self._retrieve_batch(request, batch_id, info)
            if method == "POST" and tail == "/cancel":
                return self._cancel_batch(request, batch_id)
            if method == "DELETE" and tail is None:
                return self._delete_batch(request, batch_id)
        if method == "POST" and path.endswith("/v1/messages"):
            return self._create_message(request, self._json(request), info)
        raise ApiError(404, "not_found_error", f"the fake API does not serve {method} {path}")

    @staticmethod
    def _check_headers(request: httpx2.Request) -> None:
        key = request.headers.get("x-api-key") or ""
        bearer = request.headers.get("authorization") or ""
        if not key.strip() and not bearer.removeprefix("Bearer ").strip():
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        version = request.headers.get("anthropic-version")
        if not version:
            raise ApiError.invalid("anthropic-version: header is required")
        if not _VERSION.match(version):
            raise ApiError.invalid(f"anthropic-version: unknown version {version!r}")

    @staticmethod
    def _json(request: httpx2.Request) -> dict:
        try:
            body = json.loads(request.content or b"{}")
        except json.JSONDecodeError as exc:
            raise ApiError.invalid(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError.invalid("request body must be a JSON object")
        return body

    def _log(self, info: dict) -> None:
        if not self.request_log:
            return
        line = json.dumps({"t": round(time.time(), 4), "pid": os.getpid(), **info}) + "\n"
        with self._log_lock, open(self.request_log, "a", encoding="utf-8") as fh:
            fh.write(line)

    def _admit(self) -> None:
        wait = self.window.admit(self.now())
        if wait is not None:
            raise ApiError(
                429,
                "rate_limit_error",
                f"This request would exceed your organization's rate limit of "
                f"{self.faults.rpm} requests per minute; retry after the retry-after header.",
                {"retry-after": f"{wait:g}"},
            )

    # -- messages ---------------------------------------------------------------------------

    @staticmethod
    def input_tokens(params: dict) -> int:
        """ceil(characters / 4) over system, messages and the output schema."""
        chars = len(_text_of(params.get("system", "")))
        chars += sum(len(_text_of(m.get("content"))) for m in params.get("messages", []))
        fmt = (params.get("output_config") or {}).get("format")
        if fmt:
            chars += len(json.dumps(fmt.get("schema", {})))
        return math.ceil(chars / 4)

    @staticmethod
    def user_key(params: dict) -> str:
        """Who a request is about: ``metadata.user_id``, else the last message's text."""
        user = (params.get("metadata") or {}).get("user_id")
        if user:
            return str(user)
        messages = params.get("messages") or [{}]
        return hashlib.sha256(_text_of(messages[-1].get("content")).encode()).hexdigest()[:16]

    def _request_fault(self, body: dict) -> None:
        if not self.faults.active("request"):
            return
        kind = self.faults.pick("request", json.dumps(body, sort_keys=True))
        if kind == "auth":
            raise ApiError(401, "authentication_error", "invalid x-api-key")
        if kind == "bad_request":
            raise ApiError.invalid("mock: the request was rejected as invalid")

    def _invalid_for(self, user: str) -> str | None:
        if self.faults.pick("invalid", user):
            return (
                "messages.0.content.0.text: the request for this user is invalid "
                "(seeded invalid_request fault)"
            )
        return None

    def _count_tokens(self, body: dict) -> httpx2.Response:
        self._request_fault(body)
        self._admit()
        check_count_tokens(body, self.prices)
        return httpx2.Response(200, json={"input_tokens": self.input_tokens(body)})

    def _create_message(self, request: httpx2.Request, body: dict, info: dict) -> httpx2.Response:
        info["model"] = body.get("model")
        user = self.user_key(body)
        info["user"] = user
        attempt = int(request.headers.get("x-stainless-retry-count") or 0)
        info["attempt"] = attempt
        self._request_fault(body)
        self._admit()
        model = check_message(body, self.prices)
        if (message := self._invalid_for(user)) is not None:
            info["fault"] = "invalid_request"
            raise ApiError.invalid(message)
        kind = self.faults.pick("transient", user, model.id) if attempt == 0 else None
        if kind == "slow":
            return self._slow(request, body, user, info)
        if kind is not None:
            info["fault"] = kind
            if kind == "timeout":
                raise httpx2.ReadTimeout("mock: read timed out", request=request)
            if kind != "rate_limit":
                self._wait()
            status, error_type, message = _TRANSIENT[kind]
            raise ApiError(
                status, error_type, message, {"retry-after": f"{self.faults.retry_after_s:g}"}
            )
        self._wait()
        return httpx2.Response(200, json=self._answer(body, user))

    def _wait(self) -> None:
        if self.latency_s > 0:  # sleep(0) still gives up the CPU: skip it
            time.sleep(self.latency_s)

    def _slow(self, request: httpx2.Request, body: dict, user: str, info: dict) -> httpx2.Response:
        """Produce (and bill) the answer, but take ``slow_s``: past the client's timeout, a timeout."""
        info["fault"] = "slow"
        message = self._answer(body, user)
        info["billed_output_tokens"] = message["usage"]["output_tokens"]
        try:
            client_timeout = float(request.headers.get("x-stainless-read-timeout") or "inf")
        except ValueError:
            client_timeout = math.inf
        delay = self.faults.slow_s if self.faults.slow_s is not None else client_timeout + 0.01
        if delay >= client_timeout:
            time.sleep(client_timeout if math.isfinite(client_timeout) else 0)
            raise httpx2.ReadTimeout(
                "mock: the answer took longer than the client waits", request=request
            )
        time.sleep(delay)
        return httpx2.Response(200, json=message)

    def _answer(self, params: dict, user: str) -> dict:
        message = self.message(params, user)
        usage = message.get("usage") or {}
        self.window.add_tokens(
            self.now(), int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        )
        return message

    def message(self, params: dict, user: str) -> dict:
        """The ``Message`` the fake returns for valid ``params`` (answer faults applied)."""
        model = params["model"]
        capable = self.prices.get(model).id == self.prices.get(self.prices.escalation).id
        summary = _text_of((params.get("messages") or [{}])[-1].get("content"))
        variant = int(uniform(self.faults.seed, "wording", user) * WORDINGS)
        answer = recommend(summary, capable=capable, variant=variant).as_json()
        kind = self.faults.pick("answer", user)
        stop = "end_turn"
        if kind == "malformed":
            text = "Here is my recommendation:\n" + json.dumps(answer)
        elif kind == "out_of_range":
            text = json.dumps(
                {**answer, "confidence_score": round(answer["confidence_score"] * 100, 1)}
            )
        elif kind == "wrong_enum":
            text = json.dumps({**answer, "recommendation_type": "discount_offer"})
        elif kind == "refusal":
            text, stop = "", "refusal"
        elif kind == "unsafe":
            text = json.dumps(unsafe_answer(answer, variant))
        else:
            text = json.dumps(answer)
        out_tokens = math.ceil(len(text) / 4)
        max_tokens = int(params.get("max_tokens", 1))
        if kind == "max_tokens":
            max_tokens = min(max_tokens, max(1, out_tokens // 2))
        thought = min(
            max_tokens,
            thinking_tokens(self.prices.get(model).id, params, user, self.faults.seed),
        )
        room = max_tokens - thought
        if out_tokens > room:
            text, out_tokens, stop = text[: room * 4], room, "max_tokens"
        content: list[dict] = []
        if thought:
            content.append(
                {
                    "type": "thinking",
                    "thinking": "Reading the plan, recency and weekly activity first.",
                    "signature": "mock-signature-" + random_hex(16),
                }
            )
        if text:
            content.append({"type": "text", "text": text})
        return {
            "id": "msg_mock_" + random_hex(24),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.input_tokens(params),
                "output_tokens": thought + out_tokens,
            },
        }

    # -- message batches --------------------------------------------------------------------

    def _create_batch(self, request: httpx2.Request, body: dict, info: dict) -> httpx2.Response:
        self._request_fault(body)
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
        batch_id = "msgbatch_mock_" + random_hex(24)
        info["batch_id"], info["batch_requests"] = batch_id, len(requests)
        results = [self._batch_result(batch_id, item) for item in requests]
        results.sort(key=lambda r: hashlib.sha256(r["custom_id"].encode()).hexdigest())
        state = {
            "id": batch_id,
            "created_at": self.now(),
            "batch_seconds": self.batch_seconds,
            "cancel_initiated_at": None,
        }
        self.batches.create(state, results)
        attempt = int(request.headers.get("x-stainless-retry-count") or 0)
        lost = self.faults.active("batch_create") and self.faults.pick(
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
        return httpx2.Response(200, json=view(state, self.now(), _base(request), hold=True))

    def _batch_result(self, batch_id: str, item: dict) -> dict:
        params, custom_id = item["params"], item["custom_id"]

        def errored(kind: str, message: str) -> dict:
            error = error_body(kind, message, request_id())
            return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}

        try:
            model = check_message(params, self.prices, in_batch=True)
        except ApiError as exc:
            return errored(exc.kind, exc.message)
        user = self.user_key(params)
        if (message := self._invalid_for(user)) is not None:
            return errored("invalid_request_error", message)
        if kind := self.faults.pick("batch", batch_id, custom_id):
            return {"custom_id": custom_id, "result": {"type": kind}}
        kind = self.faults.pick("transient", batch_id, custom_id, model.id)
        if kind in ("overloaded", "server_error", "timeout"):  # a batch queues: no 429s
            _, error_type, message = _TRANSIENT[kind]
            return errored(error_type, message)
        message = self.message(params, user)
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}

    def _retrieve_batch(
        self, request: httpx2.Request, batch_id: str, info: dict
    ) -> httpx2.Response:
        if self.faults.pick("batch_poll", batch_id):
            info["fault"] = "batch_poll_error"
            raise ApiError(500, "api_error", "Internal server error")
        state, first = self.batches.first_retrieve(batch_id)
        return httpx2.Response(200, json=view(state, self.now(), _base(request), hold=first))

    def _cancel_batch(self, request: httpx2.Request, batch_id: str) -> httpx2.Response:
        now = self.now()
        state = self.batches.cancel(batch_id, now)
        return httpx2.Response(200, json=view(state, now, _base(request)))

    def _delete_batch(self, request: httpx2.Request, batch_id: str) -> httpx2.Response:
        state = self.batches.get(batch_id)
        if view(state, self.now(), "")["processing_status"] != "ended":
            raise ApiError.invalid(
                f"message batch {batch_id} is still processing: cancel it and wait for it "
                "to end before deleting it"
            )
        self.batches.delete(batch_id)
        return httpx2.Response(200, json={"id": batch_id, "type": "message_batch_deleted"})

    def _batch_results(self, batch_id: str, info: dict) -> httpx2.Response:
        if self.faults.pick("batch_results", batch_id):
            info["fault"] = "batch_results_error"
            raise ApiError(500, "api_error", "Internal server error")
        state = self.batches.get(batch_id)
        shown = view(state, self.now(), "")
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
        results = final_results(state, self.batches.results(batch_id))
        lines = "".join(json.dumps(r) + "\n" for r in results)
        return httpx2.Response(
            200, content=lines.encode(), headers={"content-type": "application/x-jsonl"}
        )


def _base(request: httpx2.Request) -> str:
    prefix = request.url.path.split("/v1/messages")[0]
    return f"{request.url.scheme}://{request.url.netloc.decode()}{prefix}"
