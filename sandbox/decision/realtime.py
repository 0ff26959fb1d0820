"""Realtime inference: worker threads send Messages API calls, journal them, commit in groups.

At most ``workers`` rows are in flight, each with its worst case reserved first. On a stop,
a fatal error, a spent budget or an unwritable journal, it keeps what is in flight.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import anthropic
from tqdm.auto import tqdm

from sandbox.config import SandboxError
from sandbox.decision.clients import sends
from sandbox.decision.journal import Journal
from sandbox.decision.outcome import (
    Outcome,
    Reply,
    Usage,
    explain_fatal,
    from_exception,
    from_message,
)
from sandbox.decision.pricing import Budget, ModelPrice
from sandbox.decision.prompt import HIGH_STAKES, build_params
from sandbox.decision.records import RunContext
from sandbox.decision.store import InputRow
from sandbox.decision.summary import Tally
from sandbox.decision.writer import Recorder, Writer


@dataclass
class RowOutcome:
    """Every request one row sent, and the error that stops the run, if one did."""

    row: InputRow
    calls: list[dict] = field(default_factory=list)
    fatal: anthropic.APIStatusError | None = None

    @property
    def cost_usd(self) -> float:
        """What this row's requests cost."""
        return sum(c["cost_usd"] for c in self.calls)


def _ask(
    client: anthropic.Anthropic, ctx: RunContext, row: InputRow, model: ModelPrice, purpose: str
) -> tuple[Outcome, dict]:
    """Send one request (the SDK retries transient errors); classify the answer; its ledger row."""
    params = build_params(model, row.user_id, row.summary)
    started = time.perf_counter()
    mark = sends()
    try:
        raw = client.messages.with_raw_response.create(**params)
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        outcome, usage, tries, request_id = (
            from_exception(exc),
            Usage(),
            1,
            getattr(exc, "request_id", None),
        )
    else:
        tries, request_id = raw.retries_taken + 1, raw.request_id
        try:
            message = Reply.from_body(raw.http_response.content)  # not .parse(): see Reply
        except ValueError as exc:  # a 200 whose body is not a message (a proxy's page, say)
            outcome, usage = (
                Outcome("failure", "invalid", None, "invalid_response", str(exc)),
                Usage(),
            )
        else:
            outcome, usage = from_message(message), message.usage
    call = ctx.call(
        row.user_id, model, purpose, outcome.status, error_class=outcome.error_class,
        latency_ms=(time.perf_counter() - started) * 1000, request_id=request_id,
        **_bill(ctx, row, model, mark, usage, fallback=tries),
    )  # fmt: skip
    return outcome, call


def _bill(
    ctx: RunContext, row: InputRow, model: ModelPrice, mark, usage: Usage, fallback: int
) -> dict:
    """What one logical call cost: its answer's usage plus a bound for every unanswered send.

    A send given up on may still have been billed: its input is estimated, its output bounded
    by ``max_tokens``, and the row says it is an upper bound.
    """
    sent, answered = sends()
    sent, answered = sent - mark[0], answered - mark[1]  # since this call began
    unanswered = sent - answered
    tokens_in = usage.input_tokens + unanswered * ctx.input_tokens(row)
    tokens_out = usage.output_tokens + unanswered * model.max_tokens
    return {
        "attempts": sent or fallback,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": ctx.cost(model, tokens_in, tokens_out),
        "usage_upper_bound": unanswered > 0,
    }


def infer_row(
    client: anthropic.Anthropic, ctx: RunContext, row: InputRow, recorder: Recorder
) -> RowOutcome:
    """Primary request, then the escalation of a high-stakes answer; journals each response.

    A failed escalation keeps the primary answer (``escalation_status='escalation_failed'``):
    it was paid for and is never bought again. Never raises.
    """
    done = RowOutcome(row)
    held: dict | None = None

    def staged(answer, model, status) -> dict:
        return ctx.result(
            row, answer, model, escalated=status == "escalated",
            input_tokens=sum(c["input_tokens"] for c in done.calls),
            output_tokens=sum(c["output_tokens"] for c in done.calls),
            cost_usd=done.cost_usd, escalation_status=status,
        )  # fmt: skip

    try:
        first, call = _ask(client, ctx, row, ctx.primary, "primary")
        done.calls.append(call)
        if first.kind == "fatal":
            done.fatal = first.exc
            recorder.record(calls=[call])
        elif not first.is_result:
            recorder.record(
                calls=[call], failures=[ctx.dead_letter(row, ctx.primary, "primary", first)]
            )
        elif ctx.escalation is None or first.answer.recommendation_type not in HIGH_STAKES:
            recorder.record(calls=[call], results=[staged(first.answer, ctx.primary, None)])
        else:
            held = staged(first.answer, ctx.primary, "not_sent")
            recorder.record(calls=[call], held=[held])
            second, call = _ask(client, ctx, row, ctx.escalation, "escalation")
            done.calls.append(call)
            if second.is_result:
                final = staged(second.answer, ctx.escalation, "escalated")
            else:
                final = staged(first.answer, ctx.primary, "escalation_failed")
                done.fatal = second.exc if second.kind == "fatal" else None
            recorder.record(calls=[call], results=[final])
    except Exception as exc:  # a bug or an unexpected SDK error: fail this row, keep the run
        if held is not None:
            recorder.record(results=[{**held, "escalation_status": "escalation_failed"}])
        else:
            failure = ctx.failure(
                row.user_id, ctx.primary, "primary", type(exc).__name__, repr(exc),
                input_sha=row.input_sha,
            )  # fmt: skip
            recorder.record(failures=[failure])
    return done


class _Feed:
    """Hands pending rows to the workers, reserving each row's worst case in the budget first.

    A row that does not fit while others are in flight waits until one settles (lower,
    maybe); with nothing in flight the budget is spent and the run halts.
    """

    def __init__(self, rows, ctx: RunContext, budget: Budget, writer: Writer, workers: int):
        self._rows = iter(rows)
        self._ctx = ctx
        self._budget = budget
        self._writer = writer
        self._cond = threading.Condition()
        self._held: InputRow | None = None
        self.workers = workers
        self.workers_done = threading.Event()  # set when the last worker ends
        if not workers:
            self.workers_done.set()
        self.in_flight = 0
        self.finished = 0
        self.halted = False
        self.fatal: tuple[anthropic.APIStatusError, str] | None = None

    def halt(self) -> None:
        """No row is handed out any more (rows in flight finish and are kept)."""
        with self._cond:
            self.halted = True
            self._cond.notify_all()

    def take(self, stop: threading.Event, recorder: Recorder) -> tuple[InputRow, float] | None:
        """The next row and its reserved worst case; None when the run is over for workers."""
        with self._cond:
            while True:
                if stop.is_set() or recorder.journal_error or self._writer.error is not None:
                    self.halted = True
                if self.halted:
                    return None
                if self._writer.stalled:  # the warehouse is busy: wait before sending more
                    self._cond.wait(0.1)
                    continue
                row, self._held = self._held or next(self._rows, None), None
                if row is None:
                    return None
                worst = self._ctx.row_worst(row)
                if self._budget.reserve(worst):
                    self.in_flight += 1
                    return row, worst
                if not self.in_flight:
                    self.halted = True
                    return None
                self._held = row
                self._cond.wait(0.5)

    def done(self, reserved: float, outcome: RowOutcome) -> None:
        """Settle a finished row's cost; a run-stopping error halts the run."""
        with self._cond:
            self.in_flight -= 1
            self.finished += 1
            self._budget.settle(reserved, outcome.cost_usd)
            if outcome.fatal is not None and self.fatal is None:
                model = outcome.calls[-1]["model"] if outcome.calls else self._ctx.primary.id
                self.fatal, self.halted = (outcome.fatal, model), True
            self._cond.notify_all()

    def work(self, client, stop: threading.Event, recorder: Recorder) -> None:
        """One worker: take a row, infer it (journaled, never raises), settle it; until told to stop."""
        try:
            while (taken := self.take(stop, recorder)) is not None:
                row, reserved = taken
                outcome = RowOutcome(row)
                try:
                    outcome = infer_row(client, self._ctx, row, recorder)
                finally:
                    self.done(reserved, outcome)
        finally:
            with self._cond:
                self.workers -= 1
                if not self.workers:
                    self.workers_done.set()


def _wait(workers_done: threading.Event, timeout: float) -> bool:
    """Wait up to ``timeout`` for the workers to finish (the calling thread's only wait)."""
    return workers_done.wait(timeout)


def run_realtime(
    ctx: RunContext, client: anthropic.Anthropic, rows: list[InputRow], *, workers: int,
    budget: Budget, progress: bool, journal: Journal, stop: threading.Event,
) -> tuple[Tally, str | None]:  # fmt: skip
    """Infer ``rows`` (see the module docstring); the totals committed, and why it stopped early."""
    tally, interrupted = Tally(), None
    writer = Writer(tally, journal)
    recorder = Recorder(journal, writer)
    feed = _Feed(rows, ctx, budget, writer, min(workers, len(rows)))
    threads = [
        threading.Thread(
            target=feed.work, args=(client, stop, recorder), name=f"sandbox-infer_{i}", daemon=True
        )
        for i in range(feed.workers)
    ]
    bar = tqdm(total=len(rows), desc=f"infer {ctx.as_of}", unit="row", disable=not progress)
    try:
        for thread in threads:
            thread.start()
        interrupted = _watch(feed, stop, bar, budget)
    finally:
        feed.halt()
        for thread in threads:
            if thread.ident is not None:  # ^C can arrive before every worker started
                thread.join()
        bar.close()
        writer.close()
        journal.close(all_committed=writer.error is None)
    if writer.error is not None:
        raise SandboxError(
            f"stopped after {tally.done} rows: could not commit to the warehouse "
            f"({type(writer.error).__name__}: {writer.error}); {writer.uncommitted} answers "
            f"received are kept in the journal ({journal.folder}) and the next `sandbox infer` "
            "commits them first, without sending them again"
        ) from writer.error
    if recorder.journal_error is not None:
        raise SandboxError(
            f"stopped after {tally.done} rows: {recorder.journal_error}. Every answer "
            "received was still committed to the warehouse, so nothing is sent twice"
        ) from recorder.journal_error
    if feed.fatal is not None:
        exc, model = feed.fatal
        raise SandboxError(f"stopped after {tally.done} rows: {explain_fatal(exc, model)}") from exc
    return tally, interrupted


def _watch(feed: _Feed, stop: threading.Event, bar: tqdm, budget: Budget) -> str | None:
    """The calling thread: show progress until the workers end, a stop or a ^C; why it stopped."""
    shown, interrupted = 0, None
    while True:
        try:
            finished = _wait(feed.workers_done, 0.5)
        except KeyboardInterrupt:
            # stop handing out rows; the rows in flight finish and are kept (a second ^C
            # while they finish raises out: the journal holds their answers)
            return interrupted or "KeyboardInterrupt"
        if stop.is_set() and not interrupted:
            interrupted = "stop"
            feed.halt()
        bar.update(feed.finished - shown)
        shown = feed.finished
        bar.set_postfix_str(f"${budget.spent_usd:.4f}", refresh=False)
        if finished:
            return interrupted
