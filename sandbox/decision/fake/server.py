"""The fake Messages API's state and router: one HTTP request in, one response out.

The real SDK sends to it through :func:`sandbox.decision.fake.http_client`; the endpoints
live in :mod:`.messages` and :mod:`.batch_endpoints`, the seeded faults in :mod:`.faults`.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2

from sandbox.config import SandboxError
from sandbox.decision.fake import batch_endpoints as batches_api
from sandbox.decision.fake import messages
from sandbox.decision.fake.batches import BatchStore
from sandbox.decision.fake.errors import ApiError, error_body, request_id
from sandbox.decision.fake.faults import Faults
from sandbox.decision.fake.limits import MAX_BATCH_BYTES, MAX_REQUEST_BYTES, RateWindow
from sandbox.decision.fake.tokens import input_tokens
from sandbox.decision.pricing import PriceBook, load_price_book

__all__ = ["DEFAULT_BATCH_SECONDS", "FakeMessagesAPI"]

DEFAULT_BATCH_SECONDS = 0.2
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
        """Settings from the ``SANDBOX_MOCK_*`` variables."""
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

    # -- what the endpoints share ------------------------------------------------------------

    def input_tokens(self, params: dict) -> int:
        """Input tokens of a request, as ``usage`` and ``count_tokens`` report them."""
        return input_tokens(params, self.prices.get(params["model"]).id)

    def message(self, params: dict, user: str) -> dict:
        """The ``Message`` the fake returns for valid ``params`` (answer faults applied)."""
        return messages.build_message(self, params, user)

    @staticmethod
    def user_key(params: dict) -> str:
        """Who a request is about: ``metadata.user_id``, else the last message's text."""
        return messages.user_key(params)

    def request_fault(self, body: dict) -> None:
        """Raise the seeded ``auth`` / ``bad_request`` fault keyed by this body, if any."""
        if not self.faults.active("request"):
            return
        kind = self.faults.pick("request", json.dumps(body, sort_keys=True))
        if kind == "auth":
            raise ApiError(401, "authentication_error", "invalid x-api-key")
        if kind == "bad_request":
            raise ApiError.invalid("mock: the request was rejected as invalid")

    def invalid_for(self, user: str) -> str | None:
        """The message of the seeded ``invalid_request`` fault for this user, if any."""
        if self.faults.pick("invalid", user):
            return (
                "messages.0.content.0.text: the request for this user is invalid "
                "(seeded invalid_request fault)"
            )
        return None

    def admit(self) -> None:
        """Count a request in the rate window; a 429 with ``retry-after`` past ``rpm``."""
        wait = self.window.admit(self.now())
        if wait is not None:
            raise ApiError(
                429,
                "rate_limit_error",
                f"This request would exceed your organization's rate limit of "
                f"{self.faults.rpm} requests per minute; retry after the retry-after header.",
                {"retry-after": f"{wait:g}"},
            )

    def wait(self) -> None:
        """Sleep the configured latency (``SANDBOX_MOCK_LATENCY_MS``)."""
        if self.latency_s > 0:  # sleep(0) still gives up the CPU: skip it
            time.sleep(self.latency_s)

    # -- transport entry point -------------------------------------------------------------

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one HTTP request the way the Messages API would."""
        path = request.url.path.rstrip("/")
        info: dict = {"method": request.method, "path": path}
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
        _check_headers(request)
        if method == "POST" and path.endswith("/v1/messages/count_tokens"):
            return messages.count_tokens(self, _json(request))
        if batch_create:
            return batches_api.create_batch(self, request, _json(request), info)
        if method == "GET" and path.endswith("/v1/messages/batches"):
            return batches_api.list_batches(self, request)
        match = _BATCH_PATH.search(path)
        if match:
            batch_id, tail = match.group(1), match.group(2)
            info["batch_id"] = batch_id
            if method == "GET" and tail == "/results":
                return batches_api.batch_results(self, batch_id, info)
            if method == "GET" and tail is None:
                return batches_api.retrieve_batch(self, request, batch_id, info)
            if method == "POST" and tail == "/cancel":
                return batches_api.cancel_batch(self, request, batch_id)
            if method == "DELETE" and tail is None:
                return batches_api.delete_batch(self, batch_id)
        if method == "POST" and path.endswith("/v1/messages"):
            return messages.create_message(self, request, _json(request), info)
        raise ApiError(404, "not_found_error", f"the fake API does not serve {method} {path}")

    def _log(self, info: dict) -> None:
        if not self.request_log:
            return
        line = json.dumps({"t": round(time.time(), 4), "pid": os.getpid(), **info}) + "\n"
        with self._log_lock, open(self.request_log, "a", encoding="utf-8") as fh:
            fh.write(line)


def _check_headers(request: httpx2.Request) -> None:
    """A 401 without an API key, a 400 without a valid ``anthropic-version``."""
    key = request.headers.get("x-api-key") or ""
    bearer = request.headers.get("authorization") or ""
    if not key.strip() and not bearer.removeprefix("Bearer ").strip():
        raise ApiError(401, "authentication_error", "x-api-key header is required")
    version = request.headers.get("anthropic-version")
    if not version:
        raise ApiError.invalid("anthropic-version: header is required")
    if not _VERSION.match(version):
        raise ApiError.invalid(f"anthropic-version: unknown version {version!r}")


def _json(request: httpx2.Request) -> dict:
    """The request body as a JSON object, or a 400."""
    try:
        body = json.loads(request.content or b"{}")
    except json.JSONDecodeError as exc:
        raise ApiError.invalid(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError.invalid("request body must be a JSON object")
    return body
