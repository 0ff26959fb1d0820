"""Scores of one evaluation: agreement, per-type precision and recall, a confusion table.

An answer *agrees* when its type is one of the case's acceptable types (an invalid answer
never does); recall of ``T`` counts the cases that prefer ``T``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.decision.prompt import RECOMMENDATION_TYPES

INVALID = "invalid"
COLUMNS = (*RECOMMENDATION_TYPES, INVALID)  # of the confusion table: every answer
_DIGITS = dict(agreement=6, invalid_rate=6, tokens_per_row=3, cost_usd=8, cost_per_row_usd=10)


@dataclass(frozen=True)
class CaseResult:
    """What one golden case got back."""

    user_id: str
    case: str
    segment: str
    acceptable: tuple[str, ...]
    summary: str
    answer_type: str | None
    confidence_score: float | None
    status: str  # ok, invalid (the answer failed validation) or error (the request failed)
    error_class: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def agrees(self) -> bool:
        """True when the answer is valid and one of the acceptable types."""
        return self.status == "ok" and self.answer_type in self.acceptable

    @property
    def outcome(self) -> str:
        """The answer's type, or ``invalid`` when there is no valid answer."""
        return self.answer_type if self.status == "ok" and self.answer_type else INVALID


@dataclass(frozen=True)
class Scores:
    """The numbers the change gate compares."""

    cases: int
    agreement: float
    invalid_rate: float
    input_tokens: int
    output_tokens: int
    tokens_per_row: float
    cost_usd: float
    cost_per_row_usd: float
    precision: dict[str, float | None]
    recall: dict[str, float | None]
    confusion: dict[str, dict[str, int]]  # preferred label -> answer -> cases

    def as_dict(self) -> dict:
        """Plain data for the baseline file and ``ops.eval_runs``, the ratios rounded."""
        return {k: round(v, _DIGITS[k]) if k in _DIGITS else v for k, v in vars(self).items()}


def _agreeing(results: list[CaseResult]) -> float | None:
    return round(sum(r.agrees for r in results) / len(results), 6) if results else None


def score(results: list[CaseResult]) -> Scores:
    """Compute :class:`Scores` from the case results (see the module docstring)."""
    n = len(results) or 1  # no results: every ratio is 0
    tokens_in = sum(r.input_tokens for r in results)
    tokens_out = sum(r.output_tokens for r in results)
    cost = sum(r.cost_usd for r in results)
    preferred = {
        kind: [r for r in results if r.acceptable and r.acceptable[0] == kind]
        for kind in RECOMMENDATION_TYPES
    }
    return Scores(
        cases=len(results),
        agreement=sum(r.agrees for r in results) / n,
        invalid_rate=sum(r.status != "ok" for r in results) / n,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        tokens_per_row=(tokens_in + tokens_out) / n,
        cost_usd=cost,
        cost_per_row_usd=cost / n,
        precision={k: _agreeing([r for r in results if r.outcome == k]) for k in preferred},
        recall={kind: _agreeing(cases) for kind, cases in preferred.items()},
        confusion={
            kind: {column: sum(r.outcome == column for r in cases) for column in COLUMNS}
            for kind, cases in preferred.items()
        },
    )


def render_table(scores: Scores) -> str:
    """Per-type precision/recall and the confusion table as fixed-width text."""
    width = max(len(c) for c in COLUMNS) + 1

    def pct(value: float | None) -> str:
        return "   n/a" if value is None else f"{value:6.0%}"

    lines = [f"{'type':<{width}} precision recall"]
    for kind in RECOMMENDATION_TYPES:
        lines.append(
            f"{kind:<{width}} {pct(scores.precision[kind]):>9} {pct(scores.recall[kind]):>6}"
        )
    lines += ["", "confusion (rows: preferred label, columns: answer)"]
    lines.append(" " * width + "".join(f"{c:>{width}}" for c in COLUMNS))
    for kind, row in scores.confusion.items():
        lines.append(f"{kind:<{width}}" + "".join(f"{row[c]:>{width}}" for c in COLUMNS))
    return "\n".join(lines)
