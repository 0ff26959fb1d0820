"""Build the ``anthropic.Anthropic`` client: the real API, or the same SDK over the fake.

Both are the SDK's own client (retries, timeouts, error classes), with the transport's sends
counted by :data:`SENDS` for the ledger; ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL`` as usual.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import anthropic

from sandbox.config import LLM_CHOICES as LLM_CHOICES  # still importable from here
from sandbox.config import SandboxError, llm_choice, warehouse_path

DEFAULT_MAX_RETRIES = 4
"""Retries per request for 429, 529, 5xx and timeouts (the SDK's default is 2)."""
REQUEST_TIMEOUT_S = 60.0


def resolve_llm(llm: str | None) -> str:
    """``llm``, else ``SANDBOX_LLM``, else ``mock`` (see :func:`sandbox.config.llm_choice`)."""
    return llm_choice(llm)


class Sends:
    """What the HTTP transport really sent and got an answer to, counted per thread.

    Clients from :func:`make_client` report each request and response here (httpx event
    hooks); a worker reads :meth:`mark` before a call and :meth:`since` after it.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def on_request(self, request) -> None:
        self._local.sent = getattr(self._local, "sent", 0) + 1

    def on_response(self, response) -> None:
        self._local.answered = getattr(self._local, "answered", 0) + 1

    def mark(self) -> tuple[int, int]:
        """This thread's ``(sent, answered)`` so far."""
        local = self._local
        return getattr(local, "sent", 0), getattr(local, "answered", 0)

    def since(self, mark: tuple[int, int]) -> tuple[int, int]:
        """``(sent, unanswered)`` since ``mark`` in this thread."""
        sent, answered = self.mark()
        return sent - mark[0], (sent - mark[0]) - (answered - mark[1])

    def hook(self, http) -> None:
        """Count the requests and responses of an httpx client ``http``."""
        http.event_hooks = {
            "request": [*http.event_hooks["request"], self.on_request],
            "response": [*http.event_hooks["response"], self.on_response],
        }


SENDS = Sends()
"""The transport-level count behind ``decision.llm_calls.attempts``."""


def mock_state_dir() -> Path:
    """Where the fake keeps its Message Batches: beside the warehouse file."""
    wh = warehouse_path()
    return wh.parent / f"{wh.stem}.mock-batches"


def make_client(llm: str | None = None, *, max_retries: int | None = None) -> anthropic.Anthropic:
    """The client for ``llm`` (see :func:`resolve_llm`)."""
    retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
    if resolve_llm(llm) == "mock":
        # test double: imported in mock mode only
        from sandbox.decision.fake import OFFLINE_BASE_URL, FakeMessagesAPI, http_client

        http = http_client(FakeMessagesAPI.from_env(state_dir=mock_state_dir()))
        SENDS.hook(http)
        return anthropic.Anthropic(
            api_key="mock-key-offline",
            base_url=OFFLINE_BASE_URL,
            http_client=http,
            max_retries=retries,
            timeout=REQUEST_TIMEOUT_S,
        )
    if not os.environ.get("ANTHROPIC_API_KEY"):
        raise SandboxError("ANTHROPIC_API_KEY is not set: set it, or run with --llm mock")
    http = anthropic.DefaultHttpxClient()
    SENDS.hook(http)
    return anthropic.Anthropic(max_retries=retries, timeout=REQUEST_TIMEOUT_S, http_client=http)
