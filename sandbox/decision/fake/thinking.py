"""Thinking in the fake: which models think unless told not to, which settings they refuse.

Thinking tokens count against ``max_tokens`` and come back as a ``thinking`` block before
the text, so a ``max_tokens`` sized for the answer alone is cut as on the real API.
"""

from __future__ import annotations

from sandbox.decision.fake.errors import ApiError
from sandbox.decision.fake.faults import uniform

__all__ = ["ADAPTIVE_BY_DEFAULT", "REFUSED", "check_thinking_for_model", "thinking_tokens"]

ADAPTIVE_BY_DEFAULT = frozenset({"claude-haiku-5-5", "claude-sonnet-5-5"})
"""Models that think (adaptive thinking) when a request says nothing about ``thinking``."""
ADAPTIVE_RANGE = (150, 400)
"""Thinking tokens an adaptive request spends, seeded per user."""
_MANUAL = "manual extended thinking (budget_tokens) is not supported; use thinking.type 'adaptive'"
REFUSED: dict[str, dict[str, str]] = {
    "claude-sonnet-5-5": {
        "disabled": "use 'between_tools' for no thinking before the answer",
        "enabled": _MANUAL,
    },
    "claude-haiku-5-5": {"enabled": _MANUAL},
}
"""``thinking.type`` values a model answers with a 400, and the fix the message gives."""
NO_DISABLE_AT = {"claude-haiku-5-5": frozenset({"xhigh", "max"})}
"""Efforts at which a model refuses ``thinking: {type: disabled}``."""


def check_thinking_for_model(model_id: str, params: dict) -> None:
    """A 400 for a ``thinking`` setting the model does not accept."""
    kind = (params.get("thinking") or {}).get("type")
    fix = REFUSED.get(model_id, {}).get(kind) if kind else None
    if fix:
        raise ApiError.invalid(f"thinking.type: '{kind}' is not supported by {model_id}; {fix}")
    effort = (params.get("output_config") or {}).get("effort")
    if kind == "disabled" and effort in NO_DISABLE_AT.get(model_id, ()):
        raise ApiError.invalid(
            f"thinking.type: 'disabled' is not supported by {model_id} at effort '{effort}'; "
            "use effort 'low', 'medium' or 'high' to turn thinking off"
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
