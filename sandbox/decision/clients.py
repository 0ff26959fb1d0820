"""Build the ``anthropic.Anthropic`` client: the real API, or the same SDK over the fake, with
each thread's sends counted for the ledger (:func:`sends`)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import anthropic

from sandbox.config import SandboxError, llm_choice, warehouse_path

DEFAULT_MAX_RETRIES = 4  # for 429, 529, 5xx and timeouts (the SDK's default is 2)
REQUEST_TIMEOUT_S = 60.0

_counts = threading.local()


def sends() -> tuple[int, int]:
    """This thread's ``(sent, answered)`` HTTP requests so far: ``decision.llm_calls.attempts``."""
    return getattr(_counts, "sent", 0), getattr(_counts, "answered", 0)


def _sent(request) -> None:
    _counts.sent = getattr(_counts, "sent", 0) + 1


def _answered(response) -> None:
    _counts.answered = getattr(_counts, "answered", 0) + 1


def mock_state_dir() -> Path:
    """Where the fake keeps its Message Batches: beside the warehouse file."""
    return warehouse_path().with_suffix(".mock-batches")


def make_client(llm: str | None = None, *, max_retries: int | None = None) -> anthropic.Anthropic:
    """The client for ``llm`` (else ``SANDBOX_LLM``, else ``mock``)."""
    retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
    options: dict = {"max_retries": retries, "timeout": REQUEST_TIMEOUT_S}
    if llm_choice(llm) == "mock":
        # test double: imported in mock mode only
        from sandbox.decision.fake import OFFLINE_BASE_URL, FakeMessagesAPI, http_client

        http = http_client(FakeMessagesAPI.from_env(state_dir=mock_state_dir()))
        options.update(api_key="mock-key-offline", base_url=OFFLINE_BASE_URL)
    elif not os.environ.get("ANTHROPIC_API_KEY"):
        raise SandboxError("ANTHROPIC_API_KEY is not set: set it, or run with --llm mock")
    else:
        http = anthropic.DefaultHttpxClient()
    http.event_hooks = {"request": [_sent], "response": [_answered]}
    return anthropic.Anthropic(http_client=http, **options)
