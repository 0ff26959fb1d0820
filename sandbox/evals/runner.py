"""Run the golden set through the decision plane's own prompt, client and validation.

One request per case, primary model only; the cost is estimated from the count endpoint
first, and ``--max-cost-usd`` holds up front and per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import anthropic

from sandbox.config import SandboxError, llm_choice
from sandbox.decision.clients import make_client
from sandbox.decision.pricing import (
    Budget,
    CostEstimate,
    ModelPrice,
    TokenCount,
    approx_tokens,
    estimate_cost,
    load_price_book,
)
from sandbox.decision.prompt import (
    EXPECTED_OUTPUT_TOKENS,
    PROMPT_VERSION,
    InvalidAnswer,
    build_params,
    count_tokens,
    parse_answer,
    prefix_chars,
)
from sandbox.decision.summary import SIMULATED_COST
from sandbox.evals.golden import GOLDEN_DIR, GoldenCase, GoldenSet, load_golden
from sandbox.evals.metrics import CaseResult, Scores, render_table, score
from sandbox.ids import random_hex

FATAL_STATUS = (400, 401, 403, 404)  # no retry can fix them: the evaluation stops and says why


@dataclass
class EvalRun:
    """One evaluation: the cases, their answers and the scores, per prompt_version x model."""

    eval_run_id: str
    llm: str
    model: str
    prompt_version: str
    golden: GoldenSet
    results: list[CaseResult]
    scores: Scores
    estimate: CostEstimate
    evaluated_at: datetime
    elapsed_s: float
    skipped: int = 0  # cases the budget did not allow to be sent
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every case was sent (only a complete run can become a baseline)."""
        return self.skipped == 0

    def render(self) -> str:
        """The table ``sandbox eval`` prints."""
        s = self.scores
        source = "cached" if self.golden.cached else "built by dbt"
        lines = [
            f"eval {self.eval_run_id}: prompt_version {self.prompt_version} x {self.model} "
            f"({self.llm}), {s.cases} golden cases (summaries {source}, "
            f"{self.golden.build_s:.1f} s)",
            f"  agreement      {s.agreement:7.1%}   ({sum(r.agrees for r in self.results)} of "
            f"{s.cases} answers acceptable)",
            f"  invalid rate   {s.invalid_rate:7.1%}",
            f"  tokens per row {s.tokens_per_row:7.1f}   (in {s.input_tokens:,}, out "
            f"{s.output_tokens:,})",
            f"  cost per row   ${s.cost_per_row_usd:.6f}   (total ${s.cost_usd:.4f}, "
            f"{SIMULATED_COST if self.llm == 'mock' else 'list price'})",
            "",
            render_table(s),
        ]
        if self.skipped:
            lines.append(f"\n{self.skipped} case(s) not sent: the budget ran out (incomplete run)")
        lines += self.notes
        return "\n".join(lines)


def _count(
    client: anthropic.Anthropic, model: ModelPrice, cases: list[GoldenCase]
) -> tuple[TokenCount, str | None]:
    """Token counts from the count endpoint, or characters / 4 (and why) when it fails."""
    try:
        return count_tokens(client, model, cases[0].summary), None
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        _raise_if_fatal(exc, model.id)
        note = f"count_tokens failed ({type(exc).__name__}): tokens estimated as characters / 4"
        return TokenCount(prefix_tokens=approx_tokens("x" * prefix_chars())), note


def _raise_if_fatal(exc: anthropic.APIError, model: str) -> None:
    """Stop the evaluation on an answer no retry can fix, with the cause and the fix."""
    status = getattr(exc, "status_code", None)
    if status in FATAL_STATUS:
        raise SandboxError(
            f"the API answered {status} to the evaluation's first requests ({exc.message}): "
            f"check ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL), that the key may use {model}, "
            "and the model id (--model or sandbox/decision/models.json); or run with --llm mock"
        ) from None


def ask(client: anthropic.Anthropic, model: ModelPrice, case: GoldenCase) -> CaseResult:
    """One request for one case, classified as ok / invalid / error (fatal errors raise)."""
    fields = dict(
        user_id=case.user_id,
        case=case.case,
        segment=case.segment,
        acceptable=case.acceptable,
        summary=case.summary,
        answer_type=None,
        confidence_score=None,
    )
    try:
        message = client.messages.create(**build_params(model, case.user_id, case.summary))
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        _raise_if_fatal(exc, model.id)
        return CaseResult(**fields, status="error", error_class=type(exc).__name__)
    used_in, used_out = message.usage.input_tokens, message.usage.output_tokens
    fields.update(
        input_tokens=used_in, output_tokens=used_out, cost_usd=model.cost(used_in, used_out)
    )
    try:
        answer = parse_answer(message)
    except InvalidAnswer as exc:
        return CaseResult(**fields, status="invalid", error_class=exc.error_class)
    fields.update(answer_type=answer.recommendation_type, confidence_score=answer.confidence_score)
    return CaseResult(**fields, status="ok")


def _estimate(book, chosen, tokens, golden: GoldenSet, max_cost_usd, announce) -> CostEstimate:
    """The evaluation's cost estimate, announced; a clear error when it exceeds the budget."""
    estimate = estimate_cost(
        book,
        primary=chosen.id,
        escalation=None,
        input_tokens=[tokens.tokens(c.summary) for c in golden.cases],
        expected_output_tokens=EXPECTED_OUTPUT_TOKENS,
        max_output_tokens=chosen.max_tokens,
        batch=False,
        prefix_tokens=tokens.prefix_tokens,
    )
    if announce is not None:
        announce(estimate.render())
    if max_cost_usd is not None and estimate.expected_usd > max_cost_usd:
        raise SandboxError(
            f"the evaluation's estimated cost ${estimate.expected_usd:.4f} for {len(golden)} "
            f"cases exceeds --max-cost-usd {max_cost_usd:g}: raise the budget, or evaluate "
            f"offline with --llm mock. {estimate.render()}"
        )
    return estimate


def run_eval(
    *,
    llm: str | None = "mock",
    model: str | None = None,
    golden: GoldenSet | None = None,
    golden_dir: Path | str | None = None,
    max_cost_usd: float | None = None,
    announce: Callable[[str], None] | None = None,
) -> EvalRun:
    """Evaluate the golden set once and return the :class:`EvalRun` (nothing is written).

    ``announce`` receives the cost estimate before any request is sent.
    """
    llm = llm_choice(llm)
    book = load_price_book()
    chosen = book.get(model or book.primary)
    client = make_client(llm)  # a missing key fails here, before dbt runs
    golden = golden or load_golden(golden_dir or GOLDEN_DIR)
    tokens, count_note = _count(client, chosen, golden.cases)
    estimate = _estimate(book, chosen, tokens, golden, max_cost_usd, announce)
    budget = Budget(max_cost_usd)
    started = time.perf_counter()

    def one(case: GoldenCase) -> CaseResult | None:
        worst = chosen.cost(tokens.tokens(case.summary), chosen.max_tokens)
        if not budget.reserve(worst):
            return None
        result = ask(client, chosen, case)
        budget.settle(worst, result.cost_usd)
        return result

    if llm == "mock":  # the fake answers at once: threads would only add overhead
        answers = [one(case) for case in golden.cases]
    else:
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(one, golden.cases))
    results = [r for r in answers if r is not None]
    return EvalRun(
        eval_run_id=random_hex(12),
        llm=llm,
        model=chosen.id,
        prompt_version=PROMPT_VERSION,
        golden=golden,
        results=results,
        scores=score(results),
        estimate=estimate,
        evaluated_at=datetime.now(UTC).replace(tzinfo=None),
        elapsed_s=time.perf_counter() - started + golden.build_s,
        skipped=len(answers) - len(results),
        notes=[count_note] if count_note else [],
    )
