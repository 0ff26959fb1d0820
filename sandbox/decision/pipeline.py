"""The decision plane's steps: prepare (freeze) -> run inference (pending rows) -> write results.

:func:`run_llm_inference` estimates the cost of the pending rows before sending anything
(``count_tokens`` on one row for the shared prefix, ceil(characters / 4) for each summary),
refuses a run whose expected cost exceeds ``max_cost_usd``, then runs them in realtime
(worker threads) or batch mode (Message Batches API) and returns an
:class:`~sandbox.decision.summary.InferenceSummary`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import date

import anthropic

from sandbox.config import SandboxError, parse_date
from sandbox.decision import store
from sandbox.decision.batch import BatchRun
from sandbox.decision.clients import make_client, resolve_llm
from sandbox.decision.journal import Journal
from sandbox.decision.pricing import (
    Budget,
    CostEstimate,
    approx_tokens,
    estimate_cost,
    load_price_book,
)
from sandbox.decision.prompt import (
    EXPECTED_OUTPUT_TOKENS,
    PROMPT_VERSION,
    build_params,
)
from sandbox.decision.realtime import run_realtime
from sandbox.decision.records import RunContext, Tally, explain_fatal
from sandbox.decision.store import InputRow
from sandbox.decision.summary import InferenceSummary
from sandbox.warehouse import holds_step

MODES = ("realtime", "batch")
BATCH_POLL_S = {"mock": 0.05, "anthropic": 30.0}
BATCH_WAIT_S = {"mock": 120.0, "anthropic": 3600.0}
DEFAULT_ESCALATION_SHARE = 0.3
"""Share of rows the estimate expects to escalate before any history exists."""


@holds_step("sandbox infer")
def prepare_features(execution_date: date | str) -> int:
    """Freeze ``marts.fct_user_features_for_ai`` into ``decision.inference_inputs`` for the date."""
    return store.prepare_features(parse_date(execution_date))


@holds_step("sandbox infer")
def write_results(execution_date: date | str) -> int:
    """Upsert the date's staged answers into ``marts.user_recommendations`` (idempotent)."""
    return store.write_results(parse_date(execution_date))


def _estimate(
    ctx: RunContext, client: anthropic.Anthropic, rows: list[InputRow], journal: Journal
) -> tuple[RunContext, CostEstimate, str | None]:
    """Count the shared prefix once with ``count_tokens`` and price every pending row.

    Returns the context (with the counted prefix), the estimate, and a note when
    ``count_tokens`` was unavailable and the prefix was estimated as characters / 4.
    """
    sample = rows[0]
    params = build_params(ctx.primary, sample.user_id, sample.summary)
    counted = {
        k: params[k] for k in ("model", "system", "messages", "output_config") if k in params
    }
    overhead = ctx.overhead_tokens
    note = None
    try:
        tokens = client.messages.count_tokens(**counted).input_tokens
        overhead = max(0, tokens - approx_tokens(sample.summary))
        calls = [ctx.call(sample.user_id, ctx.primary, "estimate", "ok", input_tokens=tokens)]
        segment = journal.append({"calls": calls, "results": [], "failures": [], "held": []})
        store.commit_when_free(calls=calls)
        journal.committed([segment])
    except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
        raise SandboxError(
            f"stopped before sending anything: {explain_fatal(exc, ctx.primary.id)}"
        ) from exc
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        # e.g. a gateway without the endpoint; a real problem shows on the first request
        note = f"count_tokens failed ({type(exc).__name__}): prefix estimated as characters / 4"
    ctx = dataclasses.replace(ctx, overhead_tokens=overhead)
    # the share prices escalations only: without them, no warehouse visit to look it up
    share = (
        store.escalation_share(PROMPT_VERSION, DEFAULT_ESCALATION_SHARE)
        if ctx.escalation is not None
        else 0.0
    )
    estimate = estimate_cost(
        ctx.book,
        primary=ctx.primary.id,
        escalation=ctx.escalation.id if ctx.escalation else None,
        input_tokens=[ctx.input_tokens(r) for r in rows],
        expected_output_tokens=EXPECTED_OUTPUT_TOKENS,
        max_output_tokens=max(
            ctx.primary.max_tokens, ctx.escalation.max_tokens if ctx.escalation else 0
        ),
        batch=ctx.mode == "batch",
        prefix_tokens=overhead,
        escalation_share=share,
    )
    return ctx, estimate, note


def _recover(summary: InferenceSummary) -> None:
    """Commit what an earlier run left in the journal (first thing, before anything is sent)."""
    recovered = store.ingest_journal()
    if recovered.entries:
        summary.recovered += recovered.calls
        summary.notes.append(
            f"committed {recovered.entries:,} journal entries an earlier run left "
            f"({recovered.calls:,} ledger rows, {recovered.results:,} results, "
            f"{recovered.failures:,} failures): those requests are not sent again"
        )


@holds_step("sandbox infer")
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
    """Infer the pending rows of ``execution_date``; see the module docstring.

    ``llm``: ``mock`` (offline fake) or ``anthropic``; default ``SANDBOX_LLM``, else mock.
    ``workers``: concurrent requests (realtime). ``max_cost_usd``: the spend limit of this
    run (a positive number). ``mode``: ``realtime`` or ``batch``. ``escalate``: send
    high-stakes answers (churn_risk, upgrade_prompt) to the capable model. ``model``: the
    primary model id (default from ``models.json``). ``batch_size``: at most this many
    pending rows this run. ``max_retries``: SDK retries per request. ``poll_s`` /
    ``wait_s``: how often and how long batch mode polls before leaving a batch for the
    next run. ``stop``: when set (or on a KeyboardInterrupt in the calling thread), no new
    request is sent, the answers of requests in flight are journaled and committed, and
    the summary comes back with status ``interrupted``.
    """
    started = time.perf_counter()
    day = parse_date(execution_date)
    stop = stop or threading.Event()
    if mode not in MODES:
        raise SandboxError(f"--mode must be realtime or batch, got {mode!r}")
    if workers < 1:
        raise SandboxError(f"--workers must be 1 or more, got {workers}")
    if batch_size is not None and batch_size < 0:
        raise SandboxError(f"batch_size must be 0 or more, got {batch_size}")
    budget = Budget(max_cost_usd)
    name = resolve_llm(llm)
    book = load_price_book()
    primary = book.get(model or book.primary)
    escalation = book.get(book.escalation) if escalate else None
    if escalation is not None and escalation.id == primary.id:
        escalation = None
    client = make_client(name, max_retries=max_retries)
    ctx = RunContext(day, RunContext.new_run_id(), name, mode, book, primary, escalation)
    summary = InferenceSummary(
        execution_date=day,
        llm=name,
        mode=mode,
        model=primary.id,
        escalation_model=escalation.id if escalation else None,
        prompt_version=PROMPT_VERSION,
        run_id=ctx.run_id,
        max_cost_usd=max_cost_usd,
    )
    _recover(summary)
    work = store.load_pending(day, batch_size, prompt_version=PROMPT_VERSION, model=primary.id)
    summary.inputs, summary.skipped = work.inputs, work.staged
    if work.held_back:
        summary.held_back = len(work.held_back)
        user, message = next(iter(work.held_back.items()))
        summary.notes.append(
            f"{len(work.held_back):,} rows not sent: the API rejected their request as invalid "
            f"(e.g. {user}: {message}); they are sent again once their input, the prompt or "
            "the model changes"
        )
    tally = Tally()
    journal = Journal()
    interrupted: str | None = None
    batch_run: BatchRun | None = None
    try:
        if mode == "batch":
            deadline = time.monotonic() + (BATCH_WAIT_S[name] if wait_s is None else wait_s)
            batch_run = BatchRun(
                ctx,
                client,
                budget,
                BATCH_POLL_S[name] if poll_s is None else poll_s,
                deadline,
                progress,
                stop=stop,
            )
            batch_run.resume()
        elif work.in_open_batches:
            summary.notes.append(
                f"{work.in_open_batches} rows wait in an open Message Batch: collect them with --mode batch"
            )
        if work.rows and not stop.is_set():
            ctx, estimate, note = _estimate(ctx, client, work.rows, journal)
            summary.estimated_cost_usd = estimate.expected_usd
            summary.notes.extend(filter(None, [note, estimate.render()]))
            budget.check_estimate(estimate)
            summary.resent = sum(work.resend_reasons.values())
            if summary.resent:
                why = "; ".join(
                    f"{n} because {reason}" for reason, n in work.resend_reasons.items()
                )
                summary.notes.append(
                    f"re-sent {summary.resent:,} requests for rows sent before: {why}"
                )
            if batch_run is not None:
                batch_run.ctx = ctx
                batch_run.submit(work.rows)
            else:
                run = run_realtime(
                    ctx,
                    client,
                    work.rows,
                    workers=workers,
                    budget=budget,
                    progress=progress,
                    journal=journal,
                    stop=stop,
                )
                tally, interrupted = run.tally, run.interrupted
    finally:
        journal.close(all_committed=True)  # a no-op after realtime closed it (maybe keeping it)
    if batch_run is not None:
        tally = batch_run.tally
        interrupted = batch_run.interrupted
        summary.batch_ids = list(dict.fromkeys(batch_run.batch_ids))
        summary.notes.extend(batch_run.notes)
        processing = [b for b in batch_run.waiting if not b.startswith("intent-")]
        if processing:
            summary.notes.append(
                f"Message Batch {', '.join(processing)} is still processing; its id is stored "
                f"in decision.batch_jobs: run `sandbox infer --date {day} --mode batch` again to collect it"
            )
    if stop.is_set() and interrupted is None:
        interrupted = "stop"
    inputs, staged, summary.failures_open = store.totals(day)
    summary.done, summary.failed, summary.requests = tally.done, tally.failed, tally.requests
    summary.escalated = tally.escalated
    summary.input_tokens, summary.output_tokens = tally.input_tokens, tally.output_tokens
    summary.cost_usd = round(tally.cost_usd, 8)
    summary.failures_by_class = dict(tally.failures_by_class)
    summary.pending_left = max(0, inputs - staged - tally.failed - summary.held_back)
    if interrupted is not None:
        summary.status, summary.interrupted_by = "interrupted", interrupted
        summary.notes.append(
            f"interrupted ({interrupted}): sent no new request, kept the {tally.done:,} rows "
            f"answered; {summary.pending_left:,} rows left pending for the next run"
        )
    elif batch_run is not None and batch_run.waiting:
        summary.status = "waiting"
    elif budget.refused and (
        summary.pending_left or "escalation_over_budget" in summary.failures_by_class
    ):
        summary.status = "budget"
        summary.notes.append(
            f"stopped submitting at ${budget.spent_usd:.4f} spent: the next row's worst case would "
            f"pass --max-cost-usd {max_cost_usd:g}"
        )
    elif summary.failed or summary.held_back:
        summary.status = "partial"
    elif summary.pending_left:
        summary.status = "pending"
        why = f"--limit {batch_size}" if batch_size is not None else "rows were not attempted"
        summary.notes.append(
            f"{summary.pending_left:,} rows left pending ({why}): run the same command again "
            "for the rest"
        )
    summary.wall_s = round(time.perf_counter() - started, 3)
    return summary


@holds_step("sandbox infer")
def infer(execution_date: date | str, **kwargs) -> InferenceSummary:
    """Journal recovery -> prepare_features -> run_llm_inference -> write_results for one date."""
    day = parse_date(execution_date)
    recovered = store.ingest_journal()  # first thing: answers an earlier run left
    prepare_features(day)
    summary = run_llm_inference(day, **kwargs)
    if recovered.entries:
        summary.recovered += recovered.calls
        summary.notes.insert(
            0,
            f"committed {recovered.entries:,} journal entries an earlier run left "
            f"({recovered.calls:,} ledger rows): those requests are not sent again",
        )
    published = write_results(day)
    summary.notes.append(f"marts.user_recommendations holds {published:,} rows for {day}")
    return summary
