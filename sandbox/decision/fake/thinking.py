"""Extended thinking in the fake: which models think unless told otherwise, and what it costs.

Newer models (here Claude Sonnet 5.5) have adaptive thinking on by default: a request that
does not set ``thinking`` gets thinking before the answer, and those tokens count against
``max_tokens`` like the answer's. Such a model also refuses ``thinking: {type: disabled}``
with a 400; its lowest setting is ``between_tools`` (no thinking before the first answer).

The fake spends :func:`thinking_tokens` per request (seeded per user, between 150 and 400
with adaptive thinking, up to ``budget_tokens`` with ``enabled``), returns a ``thinking``
content block before the text, and cuts the answer when thinking and answer together pass
``max_tokens`` (``stop_reason="max_tokens"``), so a ``max_tokens`` sized for the answer
alone fails the way it would on the real API.
"""

from __future__ import annotations

from sandbox.decision.fake.errors import ApiError
from sandbox.decision.fake.faults import uniform

__all__ = ["ADAPTIVE_BY_DEFAULT", "check_thinking_for_model", "thinking_tokens"]

ADAPTIVE_BY_DEFAULT = frozenset({"claude-sonnet-5-5"})
"""Models whose thinking is on when a request says nothing (and cannot be disabled)."""
ADAPTIVE_RANGE = (150, 400)


def check_thinking_for_model(model_id: str, params: dict) -> None:
    """A 400 for a ``thinking`` setting the model does not accept."""
    kind = (params.get("thinking") or {}).get("type")
    if model_id in ADAPTIVE_BY_DEFAULT and kind == "disabled":
        raise ApiError.invalid(
            f"thinking.type: 'disabled' is not supported by {model_id}; use 'between_tools' "
            "for no thinking before the answer"
        )


def thinking_tokens(model_id: str, params: dict, user: str, seed: int = 0) -> int:
    """Thinking tokens the model spends on this request before its answer (0 for none)."""
    thinking = params.get("thinking") or {}
    kind = thinking.get("type")
    if kind is None:
        kind = "adaptive" if model_id in ADAPTIVE_BY_DEFAULT else "disabled"
    if kind in ("disabled", "between_tools"):
        return 0
    low, high = ADAPTIVE_RANGE
    spent = low + int(uniform(seed, "thinking", user) * (high - low + 1))
    if kind == "enabled":
        return min(spent, int(thinking.get("budget_tokens", spent)))
    return spent
