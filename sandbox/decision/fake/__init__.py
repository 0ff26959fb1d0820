"""An offline fake of the Anthropic Messages API, plugged into the real SDK as its transport.

A test double kept out of the runtime path (as httpx keeps ``MockTransport`` in a module of
its own): :mod:`sandbox.decision.clients` imports it only when the LLM is ``mock``.
"""

# The rooms: server (state, routing, headers), messages (/v1/messages, count_tokens),
# batch_endpoints (/v1/messages/batches/...), batches (stored batches and their lifecycle),
# validation (parameters, schemas), thinking, tokens (tokenizer ratios), answers (the rules
# table), faults (SANDBOX_MOCK_FAULTS), limits (sizes, rate window), errors, http (a socket).

from __future__ import annotations

import anthropic
import httpx2

from sandbox.decision.fake.answers import (
    WORDINGS,
    FakeAnswer,
    SummaryFacts,
    read_summary,
    recommend,
)
from sandbox.decision.fake.faults import FAULT_GROUPS, FAULT_KINDS, Faults, uniform
from sandbox.decision.fake.http import FakeServer
from sandbox.decision.fake.server import DEFAULT_BATCH_SECONDS, FakeMessagesAPI

__all__ = [
    "DEFAULT_BATCH_SECONDS",
    "OFFLINE_BASE_URL",
    "FAULT_GROUPS",
    "FAULT_KINDS",
    "WORDINGS",
    "FakeAnswer",
    "FakeMessagesAPI",
    "FakeServer",
    "Faults",
    "SummaryFacts",
    "http_client",
    "read_summary",
    "recommend",
    "uniform",
]


OFFLINE_BASE_URL = "http://anthropic-fake.invalid"
"""The fake's address: what offline clients send to, and what their logs show.

The SDK logs every request (``HTTP Request: POST <url>``, in task logs too); with its default
``https://api.anthropic.com`` an offline run would read as if it called the real service.
``.invalid`` is reserved (RFC 2606) and never resolves, so a request that somehow bypassed
the in-process transport could not reach anything either.
"""


def http_client(fake: FakeMessagesAPI) -> anthropic.DefaultHttpxClient:
    """The SDK's own HTTP client with ``fake`` as its transport (pass as ``http_client=``)."""
    return anthropic.DefaultHttpxClient(transport=httpx2.MockTransport(fake.handle))
