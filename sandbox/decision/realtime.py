"""Realtime inference: worker threads send Messages API calls and journal each answer; a writer
thread commits them to DuckDB in groups. At most ``workers`` rows are in flight, each with its
worst case reserved first; a stop, a fatal error, a spent budget or a failed journal keeps them.
"""

from __future__ import annotations

import queue
import threading
import time

import anthropic
from tqdm.auto import tqdm

from sandbox.config import SandboxError
from sandbox.decision import store
from sandbox.decision.clients import sends
from sandbox.decision.journal import Journal, JournalError
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
from sandbox.decision.summary import InferenceSummary

MAX_ROWS_PER_COMMIT = 1000
# a commit waits for more entries until this long after the previous one began: each costs
# ~20 ms, much of it fixed, and every entry is journaled first, so waiting costs no safety
COMMIT_INTERVAL_S = 1.0


class Writer:
    """The group commit: each commit takes every entry since the previous one (at most one a
    second), retried while the warehouse is busy (``stalled`` meanwhile, ``error`` if given up)."""

    def __init__(self, summary: InferenceSummary, journal: Journal):
        self.summary = summary
        self.journal = journal
        self.journal_error: JournalError | None = None
        # SimpleQueue: put and get in C, without Queue's Python-level conditions (every answer
        # passes through here once)
        self.queue: queue.SimpleQueue[dict | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.stalled = threading.Event()
        self.uncommitted = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-infer-writer", daemon=True)
        self._thread.start()

    def record(self, *, calls=(), results=(), failures=(), held=()) -> None:
        """Journal one response's rows (unless the journal failed), then queue them."""
        entry = {"calls": calls, "results": results, "failures": failures, "held": held}
        if self.journal_error is None:
            try:
                self.journal.append(entry)
            except JournalError as exc:
                self.journal_error = exc
        self.queue.put(entry)

    def close(self) -> None:
        """Commit everything queued (waiting while the warehouse is busy), stop the thread."""
        self.queue.put(None)
        self._closing.set()
        self._thread.join()

    def _take(self, batch: list, block: bool) -> bool:
        """Move queued entries into ``batch``; False once the closing marker was taken."""
        try:
            item = self.queue.get() if block else self.queue.get_nowait()
            while item is not None:
                batch.append(item)
                if len(batch) >= MAX_ROWS_PER_COMMIT:
                    return True
                item = self.queue.get_nowait()
        except queue.Empty:
            return True
        return False

    def _run(self) -> None:
        open_ = True
        batch: list[dict] = []
        last_commit = -COMMIT_INTERVAL_S
        while open_ or batch:
            if open_:
                open_ = self._take(batch, block=not batch)
            wait_s = last_commit + COMMIT_INTERVAL_S - time.monotonic()
            if open_ and batch and len(batch) < MAX_ROWS_PER_COMMIT and wait_s > 0:
                # sleep, then take what arrived: an entry does not wake the writer (that
                # would cost every answer a thread switch); close() does
                self._closing.wait(wait_s)
                open_ = self._take(batch, block=False)
            if batch and self.error is None:
                rows = {
                    k: [r for e in batch for r in e[k]] for k in ("results", "failures", "calls")
                }
                self.journal.sync()
                last_commit = time.monotonic()
                try:
                    store.commit_when_free(busy=self.stalled, **rows)
                    self.summary.count(**rows)
                except BaseException as exc:  # keep draining so no worker ever blocks
                    self.error = exc
            if self.error is not None:
                self.uncommitted += len(batch)
            batch = []


Fatal = tuple[anthropic.APIStatusError, str]  # an error that stops the run, and its model


def _ask(
    client: anthropic.Anthropic, ctx: RunContext, row: InputRow, model: ModelPrice, purpose: str
) -> tuple[Outcome, dict]:
    """Send one request (the SDK retries); classify the answer; its ledger row. A send given up
    on (a timeout) may still be billed: the row then holds an upper bound of its usage."""
    params = build_params(model, row.user_id, row.summary)
    started = time.perf_counter()
    mark = sends()
    try:
        raw = client.messages.with_raw_response.create(**params)
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        outcome, usage, tries = from_exception(exc), Usage(), 1
        request_id = getattr(exc, "request_id", None)
    else:
        tries, request_id, usage = raw.retries_taken + 1, raw.request_id, Usage()
        try:
            message = Reply.from_body(raw.http_response.content)  # not .parse(): see Reply
        except ValueError as exc:  # a 200 whose body is not a message (a proxy's page, say)
            outcome = Outcome("failure", "invalid", None, "invalid_response", str(exc))
        else:
            outcome, usage = from_message(message), message.usage
    latency_ms = (time.perf_counter() - started) * 1000
    sent, answered = (now - then for now, then in zip(sends(), mark, strict=True))  # this call's
    unanswered = sent - answered
    tokens_in = usage.input_tokens + unanswered * ctx.input_tokens(row)
    tokens_out = usage.output_tokens + unanswered * model.max_tokens
    call = ctx.call(
        row.user_id, model, purpose, outcome.status, error_class=outcome.error_class,
        latency_ms=latency_ms, request_id=request_id, attempts=sent or tries,
        input_tokens=tokens_in, output_tokens=tokens_out,
        cost_usd=ctx.cost(model, tokens_in, tokens_out), usage_upper_bound=unanswered > 0,
    )  # fmt: skip
    return outcome, call


def infer_row(
    client: anthropic.Anthropic, ctx: RunContext, row: InputRow, writer: Writer
) -> tuple[float, Fatal | None]:
    """Primary request, then the escalation of a high-stakes answer; journals each response.
    Never raises: the row's cost, and the error that stops the run if one did."""
    calls: list[dict] = []
    held: dict | None = None
    fatal: Fatal | None = None

    def staged(answer, model, status) -> dict:
        return ctx.result(
            row, answer, model, input_tokens=sum(c["input_tokens"] for c in calls),
            output_tokens=sum(c["output_tokens"] for c in calls),
            cost_usd=sum(c["cost_usd"] for c in calls), escalation_status=status,
        )  # fmt: skip

    try:
        first, call = _ask(client, ctx, row, ctx.primary, "primary")
        calls.append(call)
        if first.kind == "fatal":
            fatal = (first.exc, ctx.primary.id)
            writer.record(calls=[call])
        elif first.kind != "result":
            writer.record(
                calls=[call], failures=[ctx.dead_letter(row, ctx.primary, "primary", first)]
            )
        elif ctx.escalation is None or first.answer.recommendation_type not in HIGH_STAKES:
            writer.record(calls=[call], results=[staged(first.answer, ctx.primary, None)])
        else:
            held = staged(first.answer, ctx.primary, "not_sent")
            writer.record(calls=[call], held=[held])
            second, call = _ask(client, ctx, row, ctx.escalation, "escalation")
            calls.append(call)
            if second.kind == "result":
                final = staged(second.answer, ctx.escalation, "escalated")
            else:
                final = staged(first.answer, ctx.primary, "escalation_failed")
                fatal = (second.exc, ctx.escalation.id) if second.kind == "fatal" else None
            writer.record(calls=[call], results=[final])
    except Exception as exc:  # a bug or an unexpected SDK error: fail this row, keep the run
        if held is not None:
            writer.record(results=[{**held, "escalation_status": "escalation_failed"}])
        else:
            failure = ctx.failure(
                row.user_id, ctx.primary, "primary", type(exc).__name__, repr(exc),
                input_sha=row.input_sha,
            )  # fmt: skip
            writer.record(failures=[failure])
    return sum(c["cost_usd"] for c in calls), fatal


class _Feed:
    """Hands pending rows to the workers, reserving each row's worst case in the budget first;
    a row that does not fit waits while others are in flight (one may settle lower)."""

    def __init__(self, rows, ctx: RunContext, budget: Budget, writer: Writer, stop):
        self._rows = iter(rows)
        self._ctx = ctx
        self._budget = budget
        self._writer = writer
        self._stop = stop
        self._cond = threading.Condition()
        self._held: InputRow | None = None
        self.in_flight = 0
        self.finished = 0
        self.halted = False
        self.fatal: Fatal | None = None

    def halt(self) -> None:
        """No row is handed out any more (rows in flight finish and are kept)."""
        with self._cond:
            self.halted = True
            self._cond.notify_all()

    def take(self) -> tuple[InputRow, float] | None:
        """The next row and its reserved worst case; None when the run is over for workers."""
        writer = self._writer
        with self._cond:
            while True:
                if self._stop.is_set() or writer.journal_error or writer.error is not None:
                    self.halted = True
                if self.halted:
                    return None
                if writer.stalled.is_set():  # the warehouse is busy: wait before sending more
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

    def done(self, reserved: float, cost_usd: float, fatal: Fatal | None) -> None:
        """Settle a finished row's cost; a run-stopping error halts the run."""
        with self._cond:
            self.in_flight -= 1
            self.finished += 1
            self._budget.settle(reserved, cost_usd)
            if fatal is not None and self.fatal is None:
                self.fatal, self.halted = fatal, True
            self._cond.notify_all()

    def work(self, client) -> None:
        """One worker: take a row, infer it (journaled, never raises), settle it; until told to stop."""
        while (taken := self.take()) is not None:
            row, reserved = taken
            self.done(reserved, *infer_row(client, self._ctx, row, self._writer))


def run_realtime(
    ctx: RunContext, client: anthropic.Anthropic, rows: list[InputRow], *, summary: InferenceSummary,
    workers: int, budget: Budget, progress: bool, journal: Journal, stop: threading.Event,
) -> str | None:  # fmt: skip
    """Infer ``rows`` (see the module docstring), counting into ``summary``; why it stopped early."""
    interrupted = None
    writer = Writer(summary, journal)
    feed = _Feed(rows, ctx, budget, writer, stop)
    threads = [
        threading.Thread(target=feed.work, args=(client,), name=f"sandbox-infer_{i}", daemon=True)
        for i in range(min(workers, len(rows)))
    ]
    bar = tqdm(total=len(rows), desc=f"infer {ctx.as_of}", unit="row", disable=not progress)
    try:
        for thread in threads:
            thread.start()
        interrupted = _watch(feed, threads, stop, bar, budget)
    finally:
        feed.halt()
        for thread in threads:
            if thread.ident is not None:  # ^C can arrive before every worker started
                thread.join()
        bar.close()
        writer.close()
        journal.close(all_committed=writer.error is None)
    stopped = f"stopped after {summary.done} rows"
    if writer.error is not None:
        raise SandboxError(
            f"{stopped}: could not commit to the warehouse "
            f"({type(writer.error).__name__}: {writer.error}); {writer.uncommitted} answers "
            f"received are kept in the journal ({journal.folder}) and the next `sandbox infer` "
            "commits them first, without sending them again"
        ) from writer.error
    if writer.journal_error is not None:
        raise SandboxError(
            f"{stopped}: {writer.journal_error}. Every answer "
            "received was still committed to the warehouse, so nothing is sent twice"
        ) from writer.journal_error
    if feed.fatal is not None:
        exc, model = feed.fatal
        raise SandboxError(f"{stopped}: {explain_fatal(exc, model)}") from exc
    return interrupted


def _watch(
    feed: _Feed, threads: list[threading.Thread], stop: threading.Event, bar: tqdm, budget: Budget
) -> str | None:
    """The calling thread: show progress until the workers end, a stop or a ^C; why it stopped."""
    shown, interrupted = 0, None
    try:
        while alive := [thread for thread in threads if thread.is_alive()]:
            alive[0].join(0.5)
            if stop.is_set() and not interrupted:
                interrupted = "stop"
                feed.halt()
            bar.update(feed.finished - shown)
            shown = feed.finished
            bar.set_postfix_str(f"${budget.spent_usd:.4f}", refresh=False)
        return interrupted
    except KeyboardInterrupt:
        # stop handing out rows; the rows in flight finish and are kept (a second ^C
        # while they finish raises out: the journal holds their answers)
        return interrupted or "KeyboardInterrupt"
