"""The decision plane's steps: freeze the inputs, infer the pending rows (estimate, then
realtime or batch), publish. Each step holds the step lock, so a notebook, the CLI and Airflow
tasks take turns.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import date

import anthropic

from sandbox.config import MODES, SandboxError, llm_choice, parse_date
from sandbox.decision import store
from sandbox.decision.batch import BatchRun
from sandbox.decision.clients import make_client
from sandbox.decision.journal import Journal
from sandbox.decision.outcome import explain_fatal
from sandbox.decision.pricing import Budget, CostEstimate, estimate_cost, load_price_book
from sandbox.decision.prompt import EXPECTED_OUTPUT_TOKENS, PROMPT_VERSION, count_tokens
from sandbox.decision.realtime import run_realtime
from sandbox.decision.records import RunContext
from sandbox.decision.store import PendingWork, utcnow
from sandbox.decision.summary import InferenceSummary
from sandbox.decision.tables import INPUTS, PUBLISHED, STAGING, ensure_tables
from sandbox.ids import random_hex
from sandbox.warehouse import connect, step_lock, table_exists

BATCH_POLL_S = {"mock": 0.05, "anthropic": 30.0}
BATCH_WAIT_S = {"mock": 120.0, "anthropic": 3600.0}
DEFAULT_ESCALATION_SHARE = 0.3  # rows the estimate expects to escalate before any history
# every published date's audited mart rows, by as_of_date (publishing D+1 leaves D's)
SOURCE_MART = "marts.fct_user_features_for_ai_history"


def _check_source(con, as_of: date) -> None:
    """Refuse to freeze a date the data plane has not built, naming the command that builds it."""
    if not table_exists(con, SOURCE_MART):
        raise SandboxError(
            f"{SOURCE_MART} does not exist yet: run `sandbox build --date {as_of}` first"
        )
    found = con.execute(f"select distinct as_of_date from {SOURCE_MART} order by 1").fetchall()
    if (as_of,) not in found:
        built = ", ".join(str(r[0]) for r in found) or "no date (it is empty)"
        raise SandboxError(
            f"{SOURCE_MART} holds {built}, not {as_of}: run `sandbox build --date {as_of}` first"
        )


_FREEZE = f"""
    insert into {INPUTS} by name
    select
        ?::date as execution_date,
        user_id,
        plan_tier,
        user_summary_for_llm,
        substr(sha256(user_summary_for_llm), 1, 16) as input_sha,
        as_of_date as source_as_of_date,
        ? as source_model,
        ?::timestamp as prepared_at
    from {SOURCE_MART}
    where as_of_date = ?
"""
_DROP_STALE_ANSWERS = f"""
    delete from {STAGING} s
    where s.execution_date = ?
      and not exists (
        select 1 from {INPUTS} i
        where i.execution_date = s.execution_date
          and i.user_id = s.user_id
          and i.input_sha = s.input_sha)
"""
_UNPUBLISH_GONE = f"""
    delete from {PUBLISHED} r
    where r.execution_date = ?
      and not exists (select 1 from {STAGING} s
                      where s.execution_date = r.execution_date and s.user_id = r.user_id)
"""
_PUBLISH = f"""
    insert or replace into {PUBLISHED} by name
    select * exclude (mode, input_sha, run_id, created_at, escalation_status),
           created_at as recommended_at
    from {STAGING}
    where execution_date = ?
"""


def _in_one_transaction(con, as_of: date, table: str, statements: list[tuple[str, list]]) -> int:
    """Run ``statements`` in one transaction; return the date's row count in ``table``."""
    con.begin()
    try:
        for sql, args in statements:
            con.execute(sql, args)
        count = con.execute(
            f"select count(*) from {table} where execution_date = ?", [as_of]
        ).fetchone()[0]
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return int(count)


@step_lock("sandbox infer")
def prepare_features(execution_date: date | str) -> int:
    """Freeze the date's mart rows into ``decision.inference_inputs`` (idempotent), dropping
    staged answers whose input changed or whose user left; the number of frozen rows."""
    as_of = parse_date(execution_date)
    with connect() as con:
        _check_source(con, as_of)
        ensure_tables(con)
        statements = [
            (f"delete from {INPUTS} where execution_date = ?", [as_of]),
            (_FREEZE, [as_of, SOURCE_MART, utcnow(), as_of]),
            (_DROP_STALE_ANSWERS, [as_of]),
        ]
        return _in_one_transaction(con, as_of, INPUTS, statements)


@step_lock("sandbox infer")
def write_results(execution_date: date | str) -> int:
    """Make the date's published rows equal its staged rows (idempotent); their count."""

    as_of = parse_date(execution_date)
    with connect() as con:
        ensure_tables(con)
        statements = [(_UNPUBLISH_GONE, [as_of]), (_PUBLISH, [as_of])]
        return _in_one_transaction(con, as_of, PUBLISHED, statements)


def _estimate(
    ctx: RunContext, client: anthropic.Anthropic, work: PendingWork, journal: Journal
) -> tuple[RunContext, CostEstimate, str | None]:
    """Count tokens once (``count_tokens``), price every pending row: context, estimate, note."""
    sample = work.rows[0]
    note = None
    try:
        ctx = dataclasses.replace(ctx, tokens=count_tokens(client, ctx.primary, sample.summary))
        used = ctx.input_tokens(sample)
        calls = [ctx.call(sample.user_id, ctx.primary, "estimate", "ok", input_tokens=used)]
        journal.append({"calls": calls})
        store.commit_when_free(calls=calls)
    except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
        raise SandboxError(
            f"stopped before sending anything: {explain_fatal(exc, ctx.primary.id)}"
        ) from exc
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        # e.g. a gateway without the endpoint; a real problem shows on the first request
        note = f"count_tokens failed ({type(exc).__name__}): tokens estimated as characters / 4"
    second = ctx.escalation
    # the share prices escalations only: without them, no warehouse visit to look it up
    share = store.escalation_share(PROMPT_VERSION, DEFAULT_ESCALATION_SHARE) if second else 0.0
    estimate = estimate_cost(
        ctx.book, primary=ctx.primary.id, escalation=second and second.id,
        input_tokens=[ctx.input_tokens(r) for r in work.rows],
        expected_output_tokens=EXPECTED_OUTPUT_TOKENS,
        max_output_tokens=max(ctx.primary.max_tokens, second.max_tokens if second else 0),
        batch=ctx.mode == "batch", prefix_tokens=ctx.tokens.prefix_tokens, escalation_share=share,
    )  # fmt: skip
    return ctx, estimate, note


def _start(
    execution_date: date | str, llm: str | None, mode: str, model: str | None, escalate: bool,
    workers: int, batch_size: int | None,
) -> tuple[RunContext, InferenceSummary]:  # fmt: skip
    """Refuse options that cannot run; the run's shared context (models, id) and empty summary."""
    if mode not in MODES:
        raise SandboxError(f"--mode must be realtime or batch, got {mode!r}")
    if workers < 1:
        raise SandboxError(f"--workers must be 1 or more, got {workers}")
    if batch_size is not None and batch_size < 0:
        raise SandboxError(f"batch_size must be 0 or more, got {batch_size}")
    as_of, llm, book = parse_date(execution_date), llm_choice(llm), load_price_book()
    primary = book.get(model or book.primary)
    second = book.get(book.escalation) if escalate else None
    second = None if second is not None and second.id == primary.id else second
    ctx = RunContext(as_of, random_hex(12), llm, mode, book, primary, second)
    summary = InferenceSummary(
        as_of, llm, mode, primary.id, second.id if second else None, PROMPT_VERSION, ctx.run_id
    )
    return ctx, summary


def _note_recovered(summary: InferenceSummary, recovered: tuple[int, int, int, int]) -> None:
    """Say what an earlier run left in the journal and this one committed first."""
    entries, calls, results, failures = recovered
    if entries:
        summary.recovered += calls
        summary.notes.insert(
            0,
            f"committed {entries:,} journal entries an earlier run left ({calls:,} ledger rows, "
            f"{results:,} results, {failures:,} failures): those requests are not sent again",
        )


def _note_work(summary: InferenceSummary, work: PendingWork) -> None:
    """Count the date's inputs and say which rows are held back or sent again, and why."""
    summary.inputs, summary.skipped = work.inputs, work.staged
    if work.held_back:
        summary.held_back = len(work.held_back)
        user, message = next(iter(work.held_back.items()))
        summary.notes.append(
            f"{len(work.held_back):,} rows not sent: the API rejected their request as invalid "
            f"(e.g. {user}: {message}); they are sent again once their input, the prompt or "
            "the model changes"
        )


def _send(
    ctx: RunContext, client: anthropic.Anthropic, work: PendingWork, summary: InferenceSummary,
    budget: Budget, batch_run: BatchRun | None, **realtime,
) -> str | None:  # fmt: skip
    """Estimate, check the budget, then send the pending rows; why the run was interrupted."""
    journal = Journal()
    try:
        ctx, estimate, note = _estimate(ctx, client, work, journal)
        summary.estimated_cost_usd = estimate.expected_usd
        summary.notes.extend(filter(None, [note, estimate.render()]))
        budget.check_estimate(estimate)
        summary.resent = sum(work.resend_reasons.values())
        if summary.resent:
            why = "; ".join(f"{n} because {reason}" for reason, n in work.resend_reasons.items())
            summary.notes.append(f"re-sent {summary.resent:,} requests for rows sent before: {why}")
        if batch_run is not None:
            batch_run.ctx = ctx
            batch_run.submit(work.rows)
            return None
        return run_realtime(
            ctx, client, work.rows, summary=summary, budget=budget, journal=journal, **realtime
        )
    finally:
        journal.close(all_committed=True)  # a no-op after realtime closed it (maybe keeping it)


def _status(
    summary: InferenceSummary, interrupted: str | None, waiting: bool, budget: Budget,
    batch_size: int | None,
) -> None:  # fmt: skip
    """Fill the totals and the status (ok, partial, budget, waiting, pending, interrupted)."""
    inputs, staged, summary.failures_open = store.totals(summary.execution_date)
    summary.cost_usd = round(summary.cost_usd, 8)
    summary.pending_left = left = max(0, inputs - staged - summary.failed - summary.held_back)
    if interrupted is not None:
        summary.status, summary.interrupted_by = "interrupted", interrupted
        summary.notes.append(
            f"interrupted ({interrupted}): sent no new request, kept the {summary.done:,} rows "
            f"answered; {left:,} rows left pending for the next run"
        )
    elif waiting:
        summary.status = "waiting"
    elif budget.refused and (left or "escalation_over_budget" in summary.failures_by_class):
        summary.status = "budget"
        summary.notes.append(
            f"stopped submitting at ${budget.spent_usd:.4f} spent: the next row's worst case would "
            f"pass --max-cost-usd {budget.limit_usd:g}"
        )
    elif summary.failed or summary.held_back:
        summary.status = "partial"
    elif left:
        summary.status = "pending"
        why = f"--limit {batch_size}" if batch_size is not None else "rows were not attempted"
        summary.notes.append(
            f"{left:,} rows left pending ({why}): run the same command again for the rest"
        )


@step_lock("sandbox infer")
def run_llm_inference(
    execution_date: date | str,
    *,
    llm: str | None = None,
    workers: int = 10,
    max_cost_usd: float | None = None,
    mode: str = "realtime",
    escalate: bool = True,
    model: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    max_retries: int | None = None,
    poll_s: float | None = None,
    wait_s: float | None = None,
    stop: threading.Event | None = None,
) -> InferenceSummary:
    """Infer the date's pending rows: refuse a run expected over ``max_cost_usd``, then send.
    On ``stop`` (or Ctrl-C) no new request is sent, answers in flight are kept (``interrupted``)."""
    started = time.perf_counter()
    stop = stop or threading.Event()
    ctx, summary = _start(execution_date, llm, mode, model, escalate, workers, batch_size)
    budget = Budget(max_cost_usd)
    as_of, name, summary.max_cost_usd = ctx.as_of, ctx.llm, max_cost_usd
    client = make_client(name, max_retries=max_retries)
    _note_recovered(summary, store.ingest_journal())  # first: answers an earlier run left
    work = store.load_pending(
        as_of, batch_size, prompt_version=PROMPT_VERSION, model=ctx.primary.id
    )
    _note_work(summary, work)
    batch_run = None
    if mode == "batch":
        wait_s = BATCH_WAIT_S[name] if wait_s is None else wait_s
        poll_s = BATCH_POLL_S[name] if poll_s is None else poll_s
        deadline = time.monotonic() + wait_s
        batch_run = BatchRun(ctx, client, budget, summary, poll_s, deadline, progress, stop)
        batch_run.resume()
    elif work.in_open_batches:
        summary.notes.append(
            f"{work.in_open_batches} rows wait in an open Message Batch: collect them with --mode batch"
        )
    interrupted = None
    if work.rows and not stop.is_set():
        interrupted = _send(
            ctx, client, work, summary, budget, batch_run,
            workers=workers, progress=progress, stop=stop,
        )  # fmt: skip
    if batch_run is not None:
        interrupted = batch_run.interrupted
        batch_run.note()
    if stop.is_set() and interrupted is None:
        interrupted = "stop"
    _status(summary, interrupted, bool(batch_run and batch_run.waiting), budget, batch_size)
    summary.wall_s = round(time.perf_counter() - started, 3)
    return summary


@step_lock("sandbox infer")
def infer(execution_date: date | str, **options) -> InferenceSummary:
    """Journal recovery -> prepare_features -> run_llm_inference -> write_results for one date."""
    as_of = parse_date(execution_date)
    recovered = store.ingest_journal()  # before the freeze, which drops answers to old inputs
    prepare_features(as_of)
    summary = run_llm_inference(as_of, **options)
    _note_recovered(summary, recovered)
    published = write_results(as_of)
    summary.notes.append(f"marts.user_recommendations holds {published:,} rows for {as_of}")
    return summary
