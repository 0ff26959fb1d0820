"""The rows one inference run writes: a result, a failure (the dead letter) and a ledger row;
each carries the model and ``prompt_version``, so a bad answer traces back to one prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sandbox.decision.outcome import Outcome
from sandbox.decision.pricing import ModelPrice, PriceBook, TokenCount
from sandbox.decision.prompt import PROMPT_VERSION, Recommendation, approx_count
from sandbox.decision.store import InputRow, utcnow
from sandbox.ids import new_id

MAX_RAW_TEXT = 4000  # characters of a rejected answer kept in inference_failures.raw_text


@dataclass(frozen=True)
class RunContext:
    """What every request and row of one run shares; ``tokens`` counts a request's input
    tokens (the model's own count when ``count_tokens`` answered)."""

    as_of: date
    run_id: str
    llm: str
    mode: str
    book: PriceBook
    primary: ModelPrice
    escalation: ModelPrice | None
    tokens: TokenCount = field(default_factory=approx_count)

    def cost(self, model: ModelPrice, input_tokens: int, output_tokens: int) -> float:
        """USD for one request in this run's mode (batch discount in batch mode)."""
        discount = self.book.batch_discount if self.mode == "batch" else 1.0
        return model.cost(input_tokens, output_tokens, discount=discount)

    def input_tokens(self, row: InputRow) -> int:
        return self.tokens.tokens(row.summary)

    def worst_cost(self, row: InputRow, model: ModelPrice) -> float:
        """The most one request for ``row`` can cost (output at ``max_tokens``)."""
        return self.cost(model, self.input_tokens(row), model.max_tokens)

    def row_worst(self, row: InputRow) -> float:
        """The most a row can cost: its primary request plus, if on, the escalation."""
        worst = self.worst_cost(row, self.primary)
        if self.escalation is not None:
            worst += self.worst_cost(row, self.escalation)
        return worst

    def call(self, user_id: str, model: ModelPrice, purpose: str, status: str, **fields) -> dict:
        """A ``decision.llm_calls`` row: one logical request (or one item of a batch)."""
        return {
            "call_id": new_id(),
            "execution_date": self.as_of,
            "user_id": user_id,
            "run_id": self.run_id,
            "model": model.id,
            "mode": self.mode,
            "purpose": purpose,
            "status": status,
            "error_class": None,
            "attempts": 1,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0.0,
            "latency_ms": None,
            "batch_id": None,
            "request_id": None,
            "prompt_version": PROMPT_VERSION,
            "called_at": utcnow(),
            "usage_upper_bound": False,
            **fields,
        }

    def failure(
        self, user_id: str, model: ModelPrice, purpose: str, error_class: str, message: str,
        raw_text: str | None = None, *, input_sha: str | None = None, permanent: bool = False,
    ) -> dict:  # fmt: skip
        """A ``decision.inference_failures`` row; ``permanent``: the API rejected the request,
        which is not sent again until the input (``input_sha``), prompt or model changes."""
        return {
            "failure_id": new_id(),
            "execution_date": self.as_of,
            "user_id": user_id,
            "model": model.id,
            "prompt_version": PROMPT_VERSION,
            "mode": self.mode,
            "purpose": purpose,
            "error_class": error_class,
            "error_message": message[:2000],
            "raw_text": raw_text[:MAX_RAW_TEXT] if raw_text is not None else None,
            "run_id": self.run_id,
            "failed_at": utcnow(),
            "input_sha": input_sha,
            "permanent": permanent,
            "resolved_at": None,
        }

    def dead_letter(self, row: InputRow, model: ModelPrice, purpose: str, o: Outcome) -> dict:
        """The failure row of an answer or error the outcome classifier did not accept."""
        return self.failure(
            row.user_id, model, purpose, o.error_class or "unknown", o.message, o.raw_text,
            input_sha=row.input_sha, permanent=o.permanent,
        )  # fmt: skip

    def result(
        self, row: InputRow, answer: Recommendation, model: ModelPrice, *,
        input_tokens: int, output_tokens: int, cost_usd: float, escalation_status: str | None = None,
    ) -> dict:  # fmt: skip
        """A ``decision.recommendations_staging`` row; tokens and cost cover all its requests.
        ``escalation_status``: None, escalated, escalation_failed (primary kept) or not_sent."""
        return {
            "execution_date": self.as_of,
            "user_id": row.user_id,
            **answer.model_dump(),
            "model": model.id,
            "prompt_version": PROMPT_VERSION,
            "mode": self.mode,
            "escalated": escalation_status == "escalated",
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost_usd,
            "input_sha": row.input_sha,
            "run_id": self.run_id,
            "created_at": utcnow(),
            "escalation_status": escalation_status,
        }
