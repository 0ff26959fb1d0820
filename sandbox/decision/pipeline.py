"""Run inference for the pending rows of one date: estimate, then realtime or batch.

:func:`run_llm_inference` refuses a run whose expected cost passes ``max_cost_usd``, then
sends the rows in realtime or batch mode and returns an :class:`InferenceSummary`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from datetime import date

import anthropic

from sandbox.config import MODES, SandboxError, parse_date
from sandbox.decision import store
from sandbox.decision.batch import BatchRun
from sandbox.decision.clients import make_client, resolve_llm
from sandbox.decision.journal import Journal
from sandbox.decision.pricing import (
    Budget,
    CostEstimate,
    estimate_cost,
    load_price_book,
)
from sandbox.decision.prompt import EXPECTED_OUTPUT_TOKENS, PROMPT_VERSION, count_tokens
from sandbox.decision.realtime import run_realtime
from sandbox.decision.records import RunContext, Tally, explain_fatal
from sandbox.decision.store import InputRow, PendingWork
from sandbox.decision.summary import InferenceSummary
from sandbox.warehouse import holds_step

BATCH_POLL_S = {"mock": 0.05, "anthropic": 30.0}
BATCH_WAIT_S = {"mock": 120.0, "anthropic": 3600.0}
DEFAULT_ESCALATION_SHARE = 0.3
"""Share of rows the estimate expects to escalate before any history exists."""


@dataclass(frozen=True)
class InferenceOptions:
    """How one run goes: the keyword arguments of :func:`run_llm_inference`.

    ``llm`` mock|anthropic (default ``SANDBOX_LLM``), ``mode`` realtime|batch, ``escalate``
    high-stakes answers to the capable model, ``stop`` ends the run early.
    """

    llm: str | None = None
    workers: int = 10
    max_cost_usd: float | None = None
    mode: str = "realtime"
    escalate: bool = True
    model: str | None = None
    batch_size: int | None = None
    progress: bool = True
    max_retries: int | None = None
    poll_s: float | None = None
    wait_s: float | None = None
    stop: threading.Event | None = None

    def check(self) -> None:
        """Refuse options that cannot run, naming the fix."""
        if self.mode not in MODES:
            raise SandboxError(f"--mode must be realtime or batch, got {self.mode!r}")
        if self.workers < 1:
            raise SandboxError(f"--workers must be 1 or more, got {self.workers}")
        if self.batch_size is not None and self.batch_size < 0:
            raise SandboxError(f"batch_size must be 0 or more, got {self.batch_size}")


def _estimate(
    ctx: RunContext, client: anthropic.Anthropic, rows: list[InputRow], journal: Journal
) -> tuple[RunContext, CostEstimate, str | None]:
    """Count the shared prefix once with ``count_tokens`` and price every pending row.

    Returns the context (with the model's own counts), the estimate, and a note when
    ``count_tokens`` was unavailable and tokens were estimated as characters / 4.
    """
    sample = rows[0]
    tokens = ctx.tokens
    note = None
    try:
        tokens = count_tokens(client, ctx.primary, sample.summary)
        used = tokens.tokens(sample.summary)
        calls = [ctx.call(sample.user_id, ctx.primary, "estimate", "ok", input_tokens=used)]
        segment = journal.append({"calls": calls, "results": [], "failures": [], "held": []})
        store.commit_when_free(calls=calls)
        journal.committed([segment])
    except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
        raise SandboxError(
            f"stopped before sending anything: {explain_fatal(exc, ctx.primary.id)}"
        ) from exc
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        # e.g. a gateway without the endpoint; a real problem shows on the first request
        note = f"count_tokens failed ({type(exc).__name__}): tokens estimated as characters / 4"
    ctx = dataclasses.replace(ctx, tokens=tokens)
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
        prefix_tokens=tokens.prefix_tokens,
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


def _context(as_of: date, opts: InferenceOptions) -> tuple[RunContext, InferenceSummary]:
    """The run's shared context (models, ids) and its empty summary."""
    name = resolve_llm(opts.llm)
    book = load_price_book()
    primary = book.get(opts.model or book.primary)
    escalation = book.get(book.escalation) if opts.escalate else None
    if escalation is not None and escalation.id == primary.id:
        escalation = None
    ctx = RunContext(as_of, RunContext.new_run_id(), name, opts.mode, book, primary, escalation)
    summary = InferenceSummary(
        execution_date=as_of,
        llm=name,
        mode=opts.mode,
        model=primary.id,
        escalation_model=escalation.id if escalation else None,
        prompt_version=PROMPT_VERSION,
        run_id=ctx.run_id,
        max_cost_usd=opts.max_cost_usd,
    )
    return ctx, summary


def _note_work(summary: InferenceSummary, work: PendingWork) -> None:
    """Count the date's inputs and say which rows are held back."""
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
    budget: Budget, opts: InferenceOptions, batch_run: BatchRun | None,
) -> tuple[Tally, str | None]:  # fmt: skip
    """Estimate, check the budget, then send the pending rows; the tally and any interruption."""
    journal = Journal()
    try:
        ctx, estimate, note = _estimate(ctx, client, work.rows, journal)
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
            return Tally(), None
        run = run_realtime(
            ctx, client, work.rows, workers=opts.workers, budget=budget,
            progress=opts.progress, journal=journal, stop=opts.stop,
        )  # fmt: skip
        return run.tally, run.interrupted
    finally:
        journal.close(all_committed=True)  # a no-op after realtime closed it (maybe keeping it)


def _batch_notes(summary: InferenceSummary, batch_run: BatchRun) -> None:
    """What the batch part adds to the summary: its batch ids, notes and what still waits."""
    summary.batch_ids = list(dict.fromkeys(batch_run.batch_ids))
    summary.notes.extend(batch_run.notes)
    processing = [b for b in batch_run.waiting if not b.startswith("intent-")]
    if processing:
        summary.notes.append(
            f"Message Batch {', '.join(processing)} is still processing; its id is stored in "
            f"decision.batch_jobs: run `sandbox infer --date {summary.execution_date} --mode "
            "batch` again to collect it"
        )


def _status(
    summary: InferenceSummary, tally: Tally, interrupted: str | None, waiting: bool,
    budget: Budget, opts: InferenceOptions,
) -> None:  # fmt: skip
    """Fill the totals and the status (ok, partial, budget, waiting, pending, interrupted)."""
    inputs, staged, summary.failures_open = store.totals(summary.execution_date)
    summary.done, summary.failed, summary.requests = tally.done, tally.failed, tally.requests
    summary.escalated = tally.escalated
    summary.input_tokens, summary.output_tokens = tally.input_tokens, tally.output_tokens
    summary.cost_usd = round(tally.cost_usd, 8)
    summary.failures_by_class = dict(tally.failures_by_class)
    summary.pending_left = max(0, inputs - staged - tally.failed - summary.held_back)
    left = summary.pending_left
    if interrupted is not None:
        summary.status, summary.interrupted_by = "interrupted", interrupted
        summary.notes.append(
            f"interrupted ({interrupted}): sent no new request, kept the {tally.done:,} rows "
            f"answered; {left:,} rows left pending for the next run"
        )
    elif waiting:
        summary.status = "waiting"
    elif budget.refused and (left or "escalation_over_budget" in summary.failures_by_class):
        summary.status = "budget"
        summary.notes.append(
            f"stopped submitting at ${budget.spent_usd:.4f} spent: the next row's worst case would "
            f"pass --max-cost-usd {opts.max_cost_usd:g}"
        )
    elif summary.failed or summary.held_back:
        summary.status = "partial"
    elif left:
        summary.status = "pending"
        why = (
            f"--limit {opts.batch_size}"
            if opts.batch_size is not None
            else "rows were not attempted"
        )
        summary.notes.append(
            f"{left:,} rows left pending ({why}): run the same command again for the rest"
        )


@holds_step("sandbox infer")
def run_llm_inference(
    execution_date: date | str, options: InferenceOptions | None = None, **kwargs
) -> InferenceSummary:
    """Infer the pending rows of the date (see the module docstring and :class:`InferenceOptions`).

    Options come as an :class:`InferenceOptions`, as keywords, or both. On ``stop`` (or Ctrl-C)
    no new request is sent, answers in flight are kept, and the status is ``interrupted``.
    """
    started = time.perf_counter()
    opts = dataclasses.replace(options or InferenceOptions(), **kwargs)
    opts.check()
    opts = dataclasses.replace(opts, stop=opts.stop or threading.Event())
    as_of = parse_date(execution_date)
    budget = Budget(opts.max_cost_usd)
    ctx, summary = _context(as_of, opts)
    client = make_client(ctx.llm, max_retries=opts.max_retries)
    _recover(summary)
    work = store.load_pending(
        as_of, opts.batch_size, prompt_version=PROMPT_VERSION, model=ctx.primary.id
    )
    _note_work(summary, work)
    batch_run = None
    if opts.mode == "batch":
        wait_s = BATCH_WAIT_S[ctx.llm] if opts.wait_s is None else opts.wait_s
        poll_s = BATCH_POLL_S[ctx.llm] if opts.poll_s is None else opts.poll_s
        batch_run = BatchRun(
            ctx, client, budget, poll_s, time.monotonic() + wait_s, opts.progress, stop=opts.stop
        )
        batch_run.resume()
    elif work.in_open_batches:
        summary.notes.append(
            f"{work.in_open_batches} rows wait in an open Message Batch: collect them with --mode batch"
        )
    tally, interrupted = Tally(), None
    if work.rows and not opts.stop.is_set():
        tally, interrupted = _send(ctx, client, work, summary, budget, opts, batch_run)
    if batch_run is not None:
        tally, interrupted = batch_run.tally, batch_run.interrupted
        _batch_notes(summary, batch_run)
    if opts.stop.is_set() and interrupted is None:
        interrupted = "stop"
    _status(summary, tally, interrupted, bool(batch_run and batch_run.waiting), budget, opts)
    summary.wall_s = round(time.perf_counter() - started, 3)
    return summary
