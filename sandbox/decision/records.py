"""The rows one inference run writes (result, failure, ledger), and how API errors are sorted.

Every row carries ``execution_date``, ``user_id``, ``run_id``, the model and
``prompt_version``, so a bad answer traces back to one input row and one prompt.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import anthropic

from sandbox.decision.journal import new_id
from sandbox.decision.pricing import ModelPrice, PriceBook, TokenCount, approx_tokens
from sandbox.decision.prompt import PROMPT_VERSION, Recommendation, prefix_chars
from sandbox.decision.store import InputRow, utcnow

MAX_RAW_TEXT = 4000
"""Characters of a rejected answer kept in ``decision.inference_failures.raw_text``."""


@dataclass(frozen=True)
class RunContext:
    """What every request and row of one run shares."""

    as_of: date
    run_id: str
    llm: str
    mode: str
    book: PriceBook
    primary: ModelPrice
    escalation: ModelPrice | None
    tokens: TokenCount = field(
        default_factory=lambda: TokenCount(prefix_tokens=approx_tokens("x" * prefix_chars()))
    )
    """Input tokens of a request: prefix plus summary (the model's own count when available)."""

    @staticmethod
    def new_run_id() -> str:
        """A short random id that groups one run's rows."""
        return uuid.uuid4().hex[:12]

    def cost(self, model: ModelPrice, input_tokens: int, output_tokens: int) -> float:
        """USD for one request in this run's mode (batch discount in batch mode)."""
        return self.book.cost(model.id, input_tokens, output_tokens, batch=self.mode == "batch")

    def input_tokens(self, row: InputRow) -> int:
        """Expected input tokens of one request for ``row``."""
        return self.tokens.tokens(row.summary)

    def worst_cost(self, row: InputRow, model: ModelPrice) -> float:
        """The most one request for ``row`` can cost (output at the model's ``max_tokens``)."""
        return self.cost(model, self.input_tokens(row), model.max_tokens)

    def row_worst(self, row: InputRow) -> float:
        """The most a row can cost: its primary request plus, if on, the escalation."""
        worst = self.worst_cost(row, self.primary)
        if self.escalation is not None:
            worst += self.worst_cost(row, self.escalation)
        return worst

    def call(
        self,
        user_id: str,
        model: ModelPrice,
        purpose: str,
        status: str,
        *,
        error_class: str | None = None,
        attempts: int = 1,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
        latency_ms: float | None = None,
        batch_id: str | None = None,
        request_id: str | None = None,
        upper_bound: bool = False,
    ) -> dict:
        """A ``decision.llm_calls`` row: one logical request (or one item of a batch).

        ``upper_bound``: some of its sends got no answer (a timeout, a dropped connection),
        so their tokens are estimated (input) and bounded by ``max_tokens`` (output).
        """
        return {
            "call_id": new_id(),
            "execution_date": self.as_of,
            "user_id": user_id,
            "run_id": self.run_id,
            "model": model.id,
            "mode": self.mode,
            "purpose": purpose,
            "status": status,
            "error_class": error_class,
            "attempts": attempts,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost_usd,
            "latency_ms": latency_ms,
            "batch_id": batch_id,
            "request_id": request_id,
            "prompt_version": PROMPT_VERSION,
            "called_at": utcnow(),
            "usage_upper_bound": upper_bound,
        }

    def failure(
        self,
        user_id: str,
        model: ModelPrice,
        purpose: str,
        error_class: str,
        message: str,
        raw_text: str | None = None,
        *,
        input_sha: str | None = None,
        permanent: bool = False,
    ) -> dict:
        """A ``decision.inference_failures`` row (the dead letter, with the raw answer).

        ``permanent``: the API rejected the request itself, so it is not sent again until
        the row's input (``input_sha``), the prompt or the model changes.
        """
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

    def result(
        self,
        row: InputRow,
        answer: Recommendation,
        model: ModelPrice,
        *,
        escalated: bool,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        escalation_status: str | None = None,
    ) -> dict:
        """A ``decision.recommendations_staging`` row; tokens and cost cover every request of the row.

        ``escalation_status``: ``None``, ``escalated``, ``escalation_failed`` (primary kept),
        ``not_sent`` (the run stopped first) or ``over_budget``.
        """
        return {
            "execution_date": self.as_of,
            "user_id": row.user_id,
            **answer.model_dump(),
            "model": model.id,
            "prompt_version": PROMPT_VERSION,
            "mode": self.mode,
            "escalated": escalated,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost_usd,
            "input_sha": row.input_sha,
            "run_id": self.run_id,
            "created_at": utcnow(),
            "escalation_status": escalation_status,
        }


@dataclass
class Tally:
    """Running totals of one run, and the rows waiting to be committed."""

    done: int = 0
    failed: int = 0
    requests: int = 0
    escalated: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    failures_by_class: Counter = field(default_factory=Counter)

    def count(self, *, results: list[dict], failures: list[dict], calls: list[dict]) -> None:
        """Add a set of outcomes to the totals."""
        self.done += len(results)
        self.escalated += sum(1 for r in results if r["escalated"])
        self.failed += len(failures)
        self.failures_by_class.update(f["error_class"] for f in failures)
        for call in calls:
            self.requests += 1
            self.input_tokens += call["input_tokens"]
            self.output_tokens += call["output_tokens"]
            self.cost_usd += call["cost_usd"]


def is_fatal(exc: BaseException) -> bool:
    """True for errors no retry can fix (bad key, no permission, bad request, unknown model).

    The SDK already retried 408, 409, 429, 5xx and connection errors; any other HTTP status
    would fail every following request the same way, so the run stops at once.
    """
    return (
        isinstance(exc, anthropic.APIStatusError)
        and exc.status_code < 500
        and exc.status_code not in (408, 409, 429)
    )


def explain_fatal(exc: anthropic.APIStatusError, model: str) -> str:
    """The cause and the fix of a run-stopping API error, in one sentence."""
    detail = _api_message(exc)
    status = exc.status_code
    if status == 401:
        return (
            f"the API rejected the key (401 authentication_error: {detail}): check "
            "ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL if you use a gateway), or run with --llm mock"
        )
    if status == 403:
        return f"the key may not use {model} (403 permission_error: {detail}): pick another model or key"
    if status == 404:
        return (
            f"the API does not know {model} (404 not_found_error: {detail}): fix the model id in "
            "sandbox/decision/models.json or --model"
        )
    if status == 400:
        return (
            f"the API rejected the request as invalid (400 invalid_request_error: {detail}): "
            "check the model settings in sandbox/decision/models.json and the prompt in "
            "sandbox/decision/prompt.py"
        )
    return f"the API answered {status} ({detail}); retrying would not help, so the run stopped"


def _api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message


def error_class(exc: BaseException) -> str:
    """The ``error_class`` stored for an exception (the SDK's class name, e.g. RateLimitError)."""
    return type(exc).__name__
