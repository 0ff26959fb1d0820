"""Run the golden set through the decision plane's own prompt, client and validation; score it;
keep it in ``ops.eval_runs`` and ``ops.eval_cases``. One request per case, primary model only, the
cost estimated first (``--max-cost-usd`` holds up front and per request). An answer *agrees* when
its type is one of the case's acceptable types (an invalid answer never does); recall of ``T``
counts the cases that prefer ``T``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

import anthropic
import pandas as pd

from sandbox.config import SandboxError, llm_choice
from sandbox.decision.clients import make_client
from sandbox.decision.outcome import explain_fatal, is_fatal
from sandbox.decision.pricing import (
    Budget,
    CostEstimate,
    ModelPrice,
    TokenCount,
    estimate_cost,
    load_price_book,
)
from sandbox.decision.prompt import (
    EXPECTED_OUTPUT_TOKENS,
    PROMPT_VERSION,
    RECOMMENDATION_TYPES,
    InvalidAnswer,
    approx_count,
    build_params,
    count_tokens,
    parse_answer,
)
from sandbox.decision.summary import SIMULATED_COST
from sandbox.evals.golden import GOLDEN_DIR, GoldenCase, GoldenSet, load_golden
from sandbox.ids import random_hex
from sandbox.warehouse import connect

INVALID = "invalid"
COLUMNS = (*RECOMMENDATION_TYPES, INVALID)  # of the confusion table: every answer


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
        return self.status == "ok" and self.answer_type in self.acceptable

    @property
    def outcome(self) -> str:
        return self.answer_type if self.status == "ok" and self.answer_type else INVALID


@dataclass(frozen=True)
class Scores:
    """The numbers the change gate compares, rounded as the baseline file keeps them."""

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


def _agreeing(results: list[CaseResult]) -> float | None:
    return round(sum(r.agrees for r in results) / len(results), 6) if results else None


def score(results: list[CaseResult]) -> Scores:
    """The run's :class:`Scores` (see the module docstring)."""
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
        agreement=round(sum(r.agrees for r in results) / n, 6),
        invalid_rate=round(sum(r.status != "ok" for r in results) / n, 6),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        tokens_per_row=round((tokens_in + tokens_out) / n, 3),
        cost_usd=round(cost, 8),
        cost_per_row_usd=round(cost / n, 10),
        precision={k: _agreeing([r for r in results if r.outcome == k]) for k in preferred},
        recall={kind: _agreeing(cases) for kind, cases in preferred.items()},
        confusion={
            kind: {column: sum(r.outcome == column for r in cases) for column in COLUMNS}
            for kind, cases in preferred.items()
        },
    )


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
        """The report ``sandbox eval`` prints: scores, precision and recall, confusion table."""
        s, width = self.scores, max(len(c) for c in COLUMNS) + 1
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
            f"{'type':<{width}} precision recall",
            *(f"{k:<{width}} {_pct(s.precision[k]):>9} {_pct(s.recall[k]):>6}" for k in s.recall),
            "",
            "confusion (rows: preferred label, columns: answer)",
            " " * width + "".join(f"{c:>{width}}" for c in COLUMNS),
        ]
        for kind, row in s.confusion.items():
            lines.append(f"{kind:<{width}}" + "".join(f"{row[c]:>{width}}" for c in COLUMNS))
        if self.skipped:
            lines.append(f"\n{self.skipped} case(s) not sent: the budget ran out (incomplete run)")
        return "\n".join(lines + self.notes)


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.0%}"


def _stop_if_fatal(exc: anthropic.APIError, model: str) -> None:
    """Stop the evaluation on an answer no retry can fix, with the cause and the fix."""
    if is_fatal(exc):
        raise SandboxError(f"the evaluation stopped: {explain_fatal(exc, model)}") from None


def ask(client: anthropic.Anthropic, model: ModelPrice, case: GoldenCase) -> CaseResult:
    """One request for one case, classified as ok / invalid / error (fatal errors raise)."""
    got = dict(status="ok", answer_type=None, confidence_score=None)
    try:
        message = client.messages.create(**build_params(model, case.user_id, case.summary))
        used = message.usage.input_tokens, message.usage.output_tokens
        got.update(input_tokens=used[0], output_tokens=used[1], cost_usd=model.cost(*used))
        answer = parse_answer(message)
        got.update(answer_type=answer.recommendation_type, confidence_score=answer.confidence_score)
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        _stop_if_fatal(exc, model.id)
        got.update(status="error", error_class=type(exc).__name__)
    except InvalidAnswer as exc:
        got.update(status="invalid", error_class=exc.error_class)
    return CaseResult(case.user_id, case.case, case.segment, case.acceptable, case.summary, **got)


def _estimate(
    client: anthropic.Anthropic, chosen: ModelPrice, golden: GoldenSet
) -> tuple[TokenCount, CostEstimate, list[str]]:
    """Token counts and cost estimate from the count endpoint (characters / 4 when it fails)."""
    try:
        tokens, notes = count_tokens(client, chosen, golden.cases[0].summary), []
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        _stop_if_fatal(exc, chosen.id)
        tokens = approx_count()
        notes = [f"count_tokens failed ({type(exc).__name__}): tokens estimated as characters / 4"]
    estimate = estimate_cost(
        load_price_book(),
        primary=chosen.id,
        escalation=None,
        input_tokens=[tokens.tokens(c.summary) for c in golden.cases],
        expected_output_tokens=EXPECTED_OUTPUT_TOKENS,
        max_output_tokens=chosen.max_tokens,
        batch=False,
        prefix_tokens=tokens.prefix_tokens,
    )
    return tokens, estimate, notes


def run_eval(
    *,
    llm: str | None = "mock",
    model: str | None = None,
    golden: GoldenSet | None = None,
    golden_dir: Path | str | None = None,
    max_cost_usd: float | None = None,
    announce: Callable[[str], None] | None = None,
) -> EvalRun:
    """Evaluate the golden set once (nothing is written); ``announce`` gets the cost estimate
    before any request is sent."""
    llm, book = llm_choice(llm), load_price_book()
    chosen = book.get(model or book.primary)
    client = make_client(llm)  # a missing key fails here, before dbt runs
    golden = golden or load_golden(golden_dir or GOLDEN_DIR)
    tokens, estimate, notes = _estimate(client, chosen, golden)
    if announce is not None:
        announce(estimate.render())
    if max_cost_usd is not None and estimate.expected_usd > max_cost_usd:
        raise SandboxError(
            f"the evaluation's estimated cost ${estimate.expected_usd:.4f} for {len(golden)} "
            f"cases exceeds --max-cost-usd {max_cost_usd:g}: raise the budget, or evaluate "
            f"offline with --llm mock. {estimate.render()}"
        )
    budget, started = Budget(max_cost_usd), time.perf_counter()

    def one(case: GoldenCase) -> CaseResult | None:
        worst = chosen.cost(tokens.tokens(case.summary), chosen.max_tokens)
        if not budget.reserve(worst):
            return None
        result = ask(client, chosen, case)
        budget.settle(worst, result.cost_usd)
        return result

    # one worker offline: the fake answers at once, more threads would only add overhead
    with ThreadPoolExecutor(max_workers=1 if llm == "mock" else 4) as pool:
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
        notes=notes,
    )


# every evaluation is kept, so a change in agreement traces back to the cases that moved
DDL = """
        create schema if not exists ops;
        create table if not exists ops.eval_runs (
            eval_run_id varchar not null primary key,
            evaluated_at timestamp not null,
            llm varchar not null,
            model varchar not null,
            prompt_version varchar not null,
            golden_inputs_sha varchar not null,
            summaries_sha varchar not null,
            cases bigint not null,
            skipped bigint not null,
            agreement double not null,
            invalid_rate double not null,
            input_tokens bigint not null,
            output_tokens bigint not null,
            tokens_per_row double not null,
            cost_usd double not null,
            cost_per_row_usd double not null,
            precision_json varchar not null,
            recall_json varchar not null,
            confusion_json varchar not null,
            elapsed_s double not null,
            accepted boolean not null
        );
        create table if not exists ops.eval_cases (
            eval_run_id varchar not null,
            user_id varchar not null,
            case_name varchar not null,
            segment varchar not null,
            acceptable varchar not null,
            answer_type varchar,
            confidence_score double,
            status varchar not null,
            error_class varchar,
            agrees boolean not null,
            input_tokens bigint not null,
            output_tokens bigint not null,
            cost_usd double not null,
            user_summary_for_llm varchar not null,
            primary key (eval_run_id, user_id)
        )"""


def record_eval(run: EvalRun, *, accepted: bool = False) -> None:
    """Write one evaluation and its cases (one transaction)."""
    row = asdict(run.scores)
    for name in ("precision", "recall", "confusion"):
        row[f"{name}_json"] = json.dumps(row.pop(name))
    same = ("eval_run_id", "evaluated_at", "llm", "model", "prompt_version", "skipped", "elapsed_s")
    row.update(
        {name: getattr(run, name) for name in same},
        golden_inputs_sha=run.golden.inputs_sha,
        summaries_sha=run.golden.summaries_sha,
        accepted=accepted,
    )
    cases = pd.DataFrame(run.results, columns=[f.name for f in fields(CaseResult)]).rename(
        columns={"case": "case_name", "summary": "user_summary_for_llm"}
    )
    cases["acceptable"] = cases["acceptable"].map("|".join)
    cases["agrees"] = [r.agrees for r in run.results]
    cases["eval_run_id"] = run.eval_run_id
    with connect() as con:
        con.execute(DDL)
        con.execute("begin")
        con.register("run_row", pd.DataFrame([row]))
        con.register("case_rows", cases)
        con.execute("insert into ops.eval_runs by name select * from run_row")
        con.execute("insert into ops.eval_cases by name select * from case_rows")
        con.execute("commit")
