"""A deterministic stand-in for the Anthropic Messages API, served through an HTTP transport.

Offline mode builds the real ``anthropic.Anthropic`` client and swaps only its transport::

    fake = FakeMessagesAPI.from_env()
    client = anthropic.Anthropic(
        api_key="mock-key-offline",
        http_client=anthropic.DefaultHttpxClient(transport=httpx2.MockTransport(fake.handle)),
    )

so request building, response parsing, retries and error classes are the SDK's own.

Endpoints: ``POST /v1/messages`` (with or without ``output_config.format``),
``POST /v1/messages/count_tokens``, ``POST /v1/messages/batches``,
``GET /v1/messages/batches/{id}`` and ``GET /v1/messages/batches/{id}/results`` (JSONL).
Unknown models get a 404 ``not_found_error``; malformed requests a 400
``invalid_request_error``, like the real API.

Rules a learner can predict
---------------------------
* **Answers** follow the table in :mod:`sandbox.decision.fake.answers` (plan, days since the
  last event, 7-day event counts). The escalation model gives the same type with
  confidence + 0.05.
* **Tokens**: input = ceil(characters / 4) over the system prompt, the messages and the
  JSON schema (when ``output_config.format`` is sent); output = ceil(answer characters / 4).
  ``count_tokens`` returns the same input number. An answer longer than ``max_tokens``
  tokens is cut at ``max_tokens * 4`` characters with ``stop_reason="max_tokens"``.
* **Latency**: every ``POST /v1/messages`` sleeps ``SANDBOX_MOCK_LATENCY_MS`` (default 0).
  A Message Batch reports ``in_progress`` on the first retrieve and for
  10 x ``SANDBOX_MOCK_LATENCY_MS`` after its creation, then ``ended``.
* **Batches** are kept as JSON files in ``state_dir`` (the client keeps them next to the
  warehouse), so a batch outlives the process that created it, like a real one. Results
  come back in an order unrelated to the request order: match them on ``custom_id``.

Seeded faults (``SANDBOX_MOCK_FAULTS``)
---------------------------------------
A comma-separated list of ``kind=share`` pairs, e.g.
``rate_limit=0.2,overloaded=0.05,malformed=0.05,out_of_range=0.02``, plus the options
``seed=N`` (default 0) and ``retry_after=SECONDS`` (default 0.01). Kinds come in groups;
within a group one seeded number u in [0, 1) per key picks the first kind whose
cumulative share covers u, so shares add up (at most 1 per group) and the same key
always gets the same fault:

* transient, keyed by (user, model), on the **first attempt only** (``x-stainless-retry-count``
  0), so the SDK's retry succeeds: ``rate_limit`` (429 + ``retry-after``), ``overloaded``
  (529), ``server_error`` (500), ``timeout`` (the transport raises a read timeout). In a
  batch they are keyed by (batch, request) and end as ``errored`` results (except
  ``rate_limit``: a batch queues its requests), so the next batch re-rolls them.
* answer, keyed by user, on **every** attempt (a re-run gets the same bad answer):
  ``malformed`` (prose around the JSON), ``out_of_range`` (confidence given as a
  percentage), ``wrong_enum`` (an unknown recommendation type), ``max_tokens`` (a cut-off
  answer), ``refusal`` (``stop_reason="refusal"``).
* request, keyed by the request body: ``auth`` (401 ``authentication_error``) and
  ``bad_request`` (400 ``invalid_request_error``); the SDK does not retry them.
* batch, keyed by (batch, request): ``expired`` and ``canceled`` results.

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
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2

from sandbox.config import SandboxError
from sandbox.decision.fake.answers import recommend
from sandbox.decision.fake.faults import Faults
from sandbox.decision.pricing import PriceBook, load_price_book

_TRANSIENT_STATUS = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "mock rate limit: too many requests, retry after a moment",
    ),
    "overloaded": (529, "overloaded_error", "mock overload: the API is temporarily overloaded"),
    "server_error": (500, "api_error", "mock internal server error"),
    "timeout": (504, "timeout_error", "mock timeout: the request took too long"),
}
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_BATCH_REQUESTS = 100_000


def _error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> httpx2.Response:
    body = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": _request_id(),
    }
    return httpx2.Response(status, json=body, headers=headers or {})


def _request_id() -> str:
    return "req_mock_" + uuid.uuid4().hex[:20]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


class _BadRequest(Exception):
    pass


class FakeMessagesAPI:
    """The fake's state (settings, faults, stored batches) and its request handler."""

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        faults: Faults | None = None,
        state_dir: Path | None = None,
        request_log: Path | None = None,
        prices: PriceBook | None = None,
    ):
        self.latency_s = max(0.0, latency_ms) / 1000
        self.faults = faults or Faults()
        self.state_dir = Path(state_dir) if state_dir else None
        self.request_log = Path(request_log) if request_log else None
        self.prices = prices or load_price_book()
        self._batches: dict[str, dict] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, state_dir: Path | None = None) -> FakeMessagesAPI:
        """Settings from ``SANDBOX_MOCK_LATENCY_MS``, ``SANDBOX_MOCK_FAULTS``, ``SANDBOX_MOCK_REQUEST_LOG``."""
        raw_latency = os.environ.get("SANDBOX_MOCK_LATENCY_MS") or "0"
        try:
            latency = float(raw_latency)
        except ValueError:
            raise SandboxError(
                f"SANDBOX_MOCK_LATENCY_MS={raw_latency!r} is not a number of milliseconds (e.g. 50)"
            ) from None
        return cls(
            latency_ms=latency,
            faults=Faults.parse(os.environ.get("SANDBOX_MOCK_FAULTS")),
            state_dir=state_dir,
            request_log=Path(p) if (p := os.environ.get("SANDBOX_MOCK_REQUEST_LOG")) else None,
        )

    # -- transport entry point -------------------------------------------------------------

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one HTTP request the way the Messages API would."""
        path = request.url.path.rstrip("/")
        info: dict[str, Any] = {"method": request.method, "path": path}
        try:
            response = self._route(request, path, info)
        except httpx2.TimeoutException:
            info["status"] = "timeout"
            self._log(info)
            raise
        info["status"] = response.status_code
        self._log(info)
        return response

    def _route(self, request: httpx2.Request, path: str, info: dict) -> httpx2.Response:
        method = request.method
        try:
            if method == "POST" and path.endswith("/v1/messages/count_tokens"):
                return self._count_tokens(self._json(request), info)
            if method == "POST" and path.endswith("/v1/messages/batches"):
                return self._create_batch(request, self._json(request), info)
            match = re.search(r"/v1/messages/batches/([^/]+)(/results)?$", path)
            if method == "GET" and match:
                info["batch_id"] = match.group(1)
                if match.group(2):
                    return self._batch_results(match.group(1))
                return self._retrieve_batch(request, match.group(1))
            if method == "POST" and path.endswith("/v1/messages"):
                return self._create_message(request, self._json(request), info)
        except _BadRequest as exc:
            return _error(400, "invalid_request_error", str(exc))
        return _error(404, "not_found_error", f"the fake API does not serve {method} {path}")

    @staticmethod
    def _json(request: httpx2.Request) -> dict:
        try:
            body = json.loads(request.content or b"{}")
        except json.JSONDecodeError as exc:
            raise _BadRequest(f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _BadRequest("request body must be a JSON object")
        return body

    def _log(self, info: dict) -> None:
        if not self.request_log:
            return
        line = json.dumps({"t": round(time.time(), 4), "pid": os.getpid(), **info}) + "\n"
        with self._lock, open(self.request_log, "a", encoding="utf-8") as fh:
            fh.write(line)

    # -- messages ---------------------------------------------------------------------------

    def _check_params(self, params: dict, *, counting: bool = False) -> str:
        model = params.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("model: field required")
        if not any(model == m.id or model in m.aliases for m in self.prices.models.values()):
            return ""
        if not counting:
            max_tokens = params.get("max_tokens")
            if not isinstance(max_tokens, int) or max_tokens < 1:
                raise _BadRequest("max_tokens: must be a positive integer")
        messages = params.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("messages: at least one message is required")
        fmt = (params.get("output_config") or {}).get("format")
        if fmt is not None and (
            fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict)
        ):
            raise _BadRequest("output_config.format: expected {type: json_schema, schema: {...}}")
        return model

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

    def _request_fault(self, body: dict) -> httpx2.Response | None:
        kind = self.faults.pick("request", json.dumps(body, sort_keys=True))
        if kind == "auth":
            return _error(401, "authentication_error", "mock: invalid x-api-key")
        if kind == "bad_request":
            return _error(400, "invalid_request_error", "mock: the request was rejected as invalid")
        return None

    def _count_tokens(self, body: dict, info: dict) -> httpx2.Response:
        if (fault := self._request_fault(body)) is not None:
            return fault
        model = self._check_params(body, counting=True)
        if not model:
            return _error(404, "not_found_error", f"model: {body.get('model')}")
        return httpx2.Response(200, json={"input_tokens": self.input_tokens(body)})

    def _create_message(self, request: httpx2.Request, body: dict, info: dict) -> httpx2.Response:
        info["model"] = body.get("model")
        user = self.user_key(body)
        info["user"] = user
        attempt = int(request.headers.get("x-stainless-retry-count") or 0)
        info["attempt"] = attempt
        if (fault := self._request_fault(body)) is not None:
            return fault
        model = self._check_params(body)
        if not model:
            return _error(404, "not_found_error", f"model: {body.get('model')}")
        if attempt == 0 and (kind := self.faults.pick("transient", user, model)):
            info["fault"] = kind
            if kind == "timeout":
                raise httpx2.ReadTimeout("mock: read timed out", request=request)
            status, error_type, message = _TRANSIENT_STATUS[kind]
            if kind != "rate_limit":
                time.sleep(self.latency_s)
            return _error(
                status, error_type, message, {"retry-after": f"{self.faults.retry_after_s:g}"}
            )
        time.sleep(self.latency_s)
        return httpx2.Response(
            200, json=self.message(body, user), headers={"request-id": _request_id()}
        )

    def message(self, params: dict, user: str) -> dict:
        """The ``Message`` the fake returns for valid ``params`` (answer faults applied)."""
        model = params["model"]
        capable = self.prices.get(model).id == self.prices.get(self.prices.escalation).id
        summary = _text_of((params.get("messages") or [{}])[-1].get("content"))
        answer = recommend(summary, capable=capable).as_json()
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
        else:
            text = json.dumps(answer)
        out_tokens = math.ceil(len(text) / 4)
        max_tokens = int(params.get("max_tokens", 1))
        if kind == "max_tokens":
            max_tokens = min(max_tokens, max(1, out_tokens // 2))
        if out_tokens > max_tokens:
            text, out_tokens, stop = text[: max_tokens * 4], max_tokens, "max_tokens"
        return {
            "id": "msg_mock_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens(params), "output_tokens": out_tokens},
        }

    # -- message batches --------------------------------------------------------------------

    def _create_batch(self, request: httpx2.Request, body: dict, info: dict) -> httpx2.Response:
        if (fault := self._request_fault(body)) is not None:
            return fault
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _BadRequest("requests: at least one request is required")
        if len(requests) > MAX_BATCH_REQUESTS:
            raise _BadRequest(f"requests: at most {MAX_BATCH_REQUESTS} requests per batch")
        seen: set[str] = set()
        for i, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
                raise _BadRequest(f"requests.{i}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$")
            if custom_id in seen:
                raise _BadRequest(
                    f"requests.{i}.custom_id: {custom_id!r} is not unique in the batch"
                )
            seen.add(custom_id)
            if not isinstance(item.get("params"), dict):
                raise _BadRequest(f"requests.{i}.params: field required")
            try:
                self._check_params(item["params"])
            except _BadRequest as exc:
                raise _BadRequest(f"requests.{i}.params.{exc}") from None
        batch_id = "msgbatch_mock_" + uuid.uuid4().hex[:20]
        info["batch_id"], info["batch_requests"] = batch_id, len(requests)
        results = [self._batch_result(batch_id, item) for item in requests]
        results.sort(key=lambda r: hashlib.sha256(r["custom_id"].encode()).hexdigest())
        state = {
            "id": batch_id,
            "created_at": datetime.now(UTC).isoformat(),
            "ends_after_s": self.latency_s * 10,
            "retrieves": 0,
            "results": results,
        }
        self._save(state)
        return httpx2.Response(200, json=self._batch_view(request, state, ended=False))

    def _batch_result(self, batch_id: str, item: dict) -> dict:
        params, custom_id = item["params"], item["custom_id"]
        model = params["model"]
        known = any(model == m.id or model in m.aliases for m in self.prices.models.values())
        if not known:
            error = {"type": "not_found_error", "message": f"model: {model}"}
            return {
                "custom_id": custom_id,
                "result": {"type": "errored", "error": {"type": "error", "error": error}},
            }
        if kind := self.faults.pick("batch", batch_id, custom_id):
            return {"custom_id": custom_id, "result": {"type": kind}}
        kind = self.faults.pick("transient", batch_id, custom_id, model)
        if kind and kind != "rate_limit":  # a batch queues its requests: no rate limits
            _, error_type, message = _TRANSIENT_STATUS[kind]
            error = {"type": "error", "error": {"type": error_type, "message": message}}
            return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
        message = self.message(params, self.user_key(params))
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}

    def _retrieve_batch(self, request: httpx2.Request, batch_id: str) -> httpx2.Response:
        with self._lock:
            state = self._load(batch_id)
            if state is None:
                return _error(404, "not_found_error", f"message batch {batch_id} not found")
            created = datetime.fromisoformat(state["created_at"])
            elapsed = (datetime.now(UTC) - created).total_seconds()
            ended = state["retrieves"] >= 1 and elapsed >= state["ends_after_s"]
            state["retrieves"] += 1
            if ended and "ended_at" not in state:
                state["ended_at"] = datetime.now(UTC).isoformat()
            self._save(state)
        return httpx2.Response(200, json=self._batch_view(request, state, ended=ended))

    def _batch_results(self, batch_id: str) -> httpx2.Response:
        state = self._load(batch_id)
        if state is None or "ended_at" not in state:
            return _error(404, "not_found_error", f"no results for message batch {batch_id} yet")
        lines = "".join(json.dumps(r) + "\n" for r in state["results"])
        return httpx2.Response(
            200, content=lines.encode(), headers={"content-type": "application/x-jsonl"}
        )

    @staticmethod
    def _batch_view(request: httpx2.Request, state: dict, *, ended: bool) -> dict:
        created = datetime.fromisoformat(state["created_at"])
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for r in state["results"]:
            counts[r["result"]["type"] if ended else "processing"] += 1
        prefix = request.url.path.split("/v1/messages")[0]
        base = f"{request.url.scheme}://{request.url.netloc.decode()}{prefix}"
        return {
            "id": state["id"],
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": state["created_at"],
            "expires_at": (created + timedelta(hours=24)).isoformat(),
            "ended_at": state.get("ended_at") if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{base}/v1/messages/batches/{state['id']}/results" if ended else None,
        }

    def _save(self, state: dict) -> None:
        if self.state_dir is None:
            self._batches[state["id"]] = state
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        target = self.state_dir / f"{state['id']}.json"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, target)

    def _load(self, batch_id: str) -> dict | None:
        if self.state_dir is None:
            return self._batches.get(batch_id)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", batch_id):
            return None
        path = self.state_dir / f"{batch_id}.json"
        return json.loads(path.read_text()) if path.exists() else None
