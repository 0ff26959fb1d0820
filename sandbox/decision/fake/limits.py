"""The fake's limits: request and batch sizes, and a sliding-window rate limit with headers.

Above a size limit: 413 ``request_too_large``. With ``rpm=N`` in ``SANDBOX_MOCK_FAULTS``
the N+1st request in 60 s gets a 429 whose ``retry-after`` says when the window frees up.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from datetime import UTC, datetime

__all__ = [
    "CUSTOM_ID",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "MAX_REQUEST_BYTES",
    "UNLIMITED_RPM",
    "WINDOW_S",
    "RateWindow",
    "rfc3339",
]

MB = 1024 * 1024
MAX_REQUEST_BYTES = 32 * MB
"""Largest ``POST /v1/messages`` or ``/v1/messages/count_tokens`` body."""
MAX_BATCH_BYTES = 256 * MB
"""Largest ``POST /v1/messages/batches`` body."""
MAX_BATCH_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
WINDOW_S = 60.0
UNLIMITED_RPM = 100_000
"""The requests limit the headers report when no ``rpm`` is set (not enforced)."""
INPUT_TOKENS_PER_MIN = 4_000_000
OUTPUT_TOKENS_PER_MIN = 800_000


def rfc3339(epoch_s: float) -> str:
    """An RFC 3339 UTC timestamp, as the API writes them (``...Z``)."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


class RateWindow:
    """Requests and tokens admitted in the last :data:`WINDOW_S` seconds (thread-safe)."""

    def __init__(self, rpm: int | None = None):
        self.rpm = rpm
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, int, int]] = deque()
        self._used_in = self._used_out = 0
        self._lock = threading.Lock()

    def _trim(self, now: float) -> None:
        edge = now - WINDOW_S
        while self._requests and self._requests[0] <= edge:
            self._requests.popleft()
        while self._tokens and self._tokens[0][0] <= edge:
            _, used_in, used_out = self._tokens.popleft()
            self._used_in -= used_in
            self._used_out -= used_out

    def admit(self, now: float) -> float | None:
        """Count one request at ``now``; ``None`` when admitted, else whole seconds to wait."""
        with self._lock:
            self._trim(now)
            if self.rpm is not None and len(self._requests) >= self.rpm:
                return float(max(1, math.ceil(self._requests[0] + WINDOW_S - now)))
            self._requests.append(now)
            return None

    def add_tokens(self, now: float, input_tokens: int, output_tokens: int) -> None:
        """Record the tokens of an answered request (they show in the token headers)."""
        with self._lock:
            self._tokens.append((now, input_tokens, output_tokens))
            self._used_in += input_tokens
            self._used_out += output_tokens

    def headers(self, now: float) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers as of ``now``."""
        with self._lock:
            self._trim(now)
            requests, used_in, used_out = len(self._requests), self._used_in, self._used_out
            oldest = self._requests[0] if self._requests else now
        limit = self.rpm if self.rpm is not None else UNLIMITED_RPM
        reset = rfc3339(oldest + WINDOW_S)
        out = {
            "anthropic-ratelimit-requests-limit": str(limit),
            "anthropic-ratelimit-requests-remaining": str(max(0, limit - requests)),
            "anthropic-ratelimit-requests-reset": reset,
        }
        for name, cap, used in (
            ("input-tokens", INPUT_TOKENS_PER_MIN, used_in),
            ("output-tokens", OUTPUT_TOKENS_PER_MIN, used_out),
            ("tokens", INPUT_TOKENS_PER_MIN + OUTPUT_TOKENS_PER_MIN, used_in + used_out),
        ):
            out[f"anthropic-ratelimit-{name}-limit"] = str(cap)
            out[f"anthropic-ratelimit-{name}-remaining"] = str(max(0, cap - used))
            out[f"anthropic-ratelimit-{name}-reset"] = reset
        return out
