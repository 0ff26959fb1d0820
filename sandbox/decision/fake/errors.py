"""The API's error shape: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""

from __future__ import annotations

from sandbox.ids import random_hex

__all__ = ["ApiError", "error_body", "random_hex", "request_id"]


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
