"""An offline fake of the Anthropic Messages API, plugged into the real SDK as its transport.

A test double, kept out of the runtime path: :mod:`sandbox.decision.clients` imports it
only when the LLM is ``mock``. See :mod:`sandbox.decision.fake.server` for what it serves.
"""

from __future__ import annotations

from sandbox.decision.fake.answers import FakeAnswer, SummaryFacts, read_summary, recommend
from sandbox.decision.fake.faults import FAULT_GROUPS, FAULT_KINDS, Faults, uniform
from sandbox.decision.fake.server import FakeMessagesAPI

__all__ = [
    "FAULT_GROUPS",
    "FAULT_KINDS",
    "FakeAnswer",
    "FakeMessagesAPI",
    "Faults",
    "SummaryFacts",
    "read_summary",
    "recommend",
    "uniform",
]
