"""Scores of one evaluation: agreement, per-type precision and recall, a confusion table.

An answer *agrees* when its type is one of the case's acceptable types (an invalid answer
never does); recall of ``T`` counts the cases that prefer ``T``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sandbox.decision.prompt import RECOMMENDATION_TYPES

INVALID = "invalid"
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
    cost_usd: float
    precision: dict[str, float | None]
    recall: dict[str, float | None]
    confusion: dict[str, dict[str, int]]  # preferred label -> answer -> cases

    @property
    def tokens_per_row(self) -> float:
        return (self.input_tokens + self.output_tokens) / self.cases if self.cases else 0.0

    @property
    def cost_per_row_usd(self) -> float:
        return self.cost_usd / self.cases if self.cases else 0.0

    def as_dict(self) -> dict:
        """Plain data for the baseline file and ``ops.eval_runs``, the ratios rounded."""
        data = vars(self) | {"tokens_per_row": self.tokens_per_row}
        data["cost_per_row_usd"] = self.cost_per_row_usd
        return {name: round(v, _DIGITS[name]) if name in _DIGITS else v for name, v in data.items()}


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def score(results: list[CaseResult]) -> Scores:
    """Compute :class:`Scores` from the case results (see the module docstring)."""
    n = len(results)
    answered = Counter(r.outcome for r in results)
    precision, recall = {}, {}
    for kind in RECOMMENDATION_TYPES:
        hits = sum(1 for r in results if r.outcome == kind and r.agrees)
        precision[kind] = _ratio(hits, answered[kind])
        preferred = [r for r in results if r.acceptable and r.acceptable[0] == kind]
        recall[kind] = _ratio(sum(r.agrees for r in preferred), len(preferred))
    columns = [*RECOMMENDATION_TYPES, INVALID]
    confusion = {kind: {col: 0 for col in columns} for kind in RECOMMENDATION_TYPES}
    for r in results:
        if r.acceptable and r.acceptable[0] in confusion:
            confusion[r.acceptable[0]][r.outcome] += 1
    return Scores(
        cases=n,
        agreement=sum(r.agrees for r in results) / n if n else 0.0,
        invalid_rate=(n - sum(r.status == "ok" for r in results)) / n if n else 0.0,
        input_tokens=sum(r.input_tokens for r in results),
        output_tokens=sum(r.output_tokens for r in results),
        cost_usd=sum(r.cost_usd for r in results),
        precision=precision,
        recall=recall,
        confusion=confusion,
    )


def render_table(scores: Scores) -> str:
    """Per-type precision/recall and the confusion table as fixed-width text."""
    columns = [*RECOMMENDATION_TYPES, INVALID]
    width = max(len(c) for c in columns) + 1

    def pct(value: float | None) -> str:
        return "   n/a" if value is None else f"{value:6.0%}"

    lines = [f"{'type':<{width}} precision recall"]
    for kind in RECOMMENDATION_TYPES:
        lines.append(
            f"{kind:<{width}} {pct(scores.precision[kind]):>9} {pct(scores.recall[kind]):>6}"
        )
    lines += ["", "confusion (rows: preferred label, columns: answer)"]
    lines.append(" " * width + "".join(f"{c:>{width}}" for c in columns))
    for kind, row in scores.confusion.items():
        lines.append(f"{kind:<{width}}" + "".join(f"{row[c]:>{width}}" for c in columns))
    return "\n".join(lines)
