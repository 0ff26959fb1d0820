"""The API's error shape: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""

from __future__ import annotations

import os
import random

__all__ = ["ApiError", "error_body", "random_hex", "request_id"]

# the fake's ids (request, message, batch) need to be unique, not secret: one generator seeded
# from os.urandom (reseeded in a forked child) instead of uuid4, whose os.urandom call per id
# hands the interpreter to another thread and back (the engine's threads paid for it)
_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)


def random_hex(digits: int) -> str:
    """``digits`` random lowercase hex digits (an id's random part)."""
    return f"{_ids.getrandbits(4 * digits):0{digits}x}"


def request_id() -> str:
    """A fresh ``request-id`` (header and error body carry the same one)."""
    return "req_mock_" + random_hex(24)


def error_body(kind: str, message: str, rid: str) -> dict:
    """The JSON body of an error response."""
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": rid}


class ApiError(Exception):
    """An error response to send: HTTP status, error type, message and extra headers."""

    def __init__(self, status: int, kind: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.headers = headers or {}

    @classmethod
    def invalid(cls, message: str) -> ApiError:
        """A 400 ``invalid_request_error``."""
        return cls(400, "invalid_request_error", message)
