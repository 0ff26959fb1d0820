"""Realtime inference: a thread pool of Messages API calls, committed in small batches.

At most ``workers`` rows are in flight. Before a row is submitted the budget reserves its
worst case (``max_tokens`` output, plus the escalation request); a row that does not fit
stops the submitting. A writer thread commits finished rows as they arrive (group commit:
one transaction for every row that finished during the previous commit), so a killed run
loses at most the rows in flight plus the few waiting for their commit. A run-stopping
API error (see :func:`records.is_fatal`) stops the submitting at once; what finished is
still committed, then the error is raised as a :class:`SandboxError`.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import anthropic
from tqdm.auto import tqdm

from sandbox.config import SandboxError
from sandbox.decision import store
from sandbox.decision.pricing import Budget, ModelPrice
from sandbox.decision.prompt import (
    HIGH_STAKES,
    InvalidAnswer,
    Recommendation,
    build_params,
    parse_answer,
)
from sandbox.decision.records import RunContext, Tally, error_class, explain_fatal, is_fatal
from sandbox.decision.store import InputRow

MAX_ROWS_PER_COMMIT = 500


@dataclass
class RowOutcome:
    """Everything one row produced: its result or failure, and every request it sent."""

    row: InputRow
    result: dict | None = None
    failure: dict | None = None
    calls: list[dict] = field(default_factory=list)
    fatal: anthropic.APIStatusError | None = None

    @property
    def cost_usd(self) -> float:
        """What this row's requests cost."""
        return sum(c["cost_usd"] for c in self.calls)


@dataclass
class _Answer:
    answer: Recommendation | None
    call: dict
    failure: dict | None = None
    fatal: anthropic.APIStatusError | None = None


def _ask(
    client: anthropic.Anthropic, ctx: RunContext, row: InputRow, model: ModelPrice, purpose: str
) -> _Answer:
    """Send one request (the SDK retries transient errors) and validate the answer."""
    params = build_params(model, row.user_id, row.summary)
    started = time.perf_counter()
    try:
        raw = client.messages.with_raw_response.create(**params)
        message = raw.parse()
    except anthropic.APIStatusError as exc:
        latency = (time.perf_counter() - started) * 1000
        attempts = 1 if is_fatal(exc) else client.max_retries + 1
        call = ctx.call(
            row.user_id,
            model,
            purpose,
            "error",
            error_class=error_class(exc),
            attempts=attempts,
            latency_ms=latency,
            request_id=exc.request_id,
        )
        if is_fatal(exc):
            return _Answer(None, call, fatal=exc)
        failure = ctx.failure(row.user_id, model, purpose, error_class(exc), str(exc))
        return _Answer(None, call, failure)
    except anthropic.APIConnectionError as exc:  # includes APITimeoutError
        latency = (time.perf_counter() - started) * 1000
        call = ctx.call(
            row.user_id,
            model,
            purpose,
            "error",
            error_class=error_class(exc),
            attempts=client.max_retries + 1,
            latency_ms=latency,
        )
        failure = ctx.failure(row.user_id, model, purpose, error_class(exc), str(exc) or repr(exc))
        return _Answer(None, call, failure)
    latency = (time.perf_counter() - started) * 1000
    usage = message.usage
    cost = ctx.cost(model, usage.input_tokens, usage.output_tokens)
    common = {
        "attempts": raw.retries_taken + 1,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": cost,
        "latency_ms": latency,
        "request_id": raw.request_id,
    }
    try:
        answer = parse_answer(message)
    except InvalidAnswer as exc:
        call = ctx.call(
            row.user_id, model, purpose, "invalid", error_class=exc.error_class, **common
        )
        failure = ctx.failure(row.user_id, model, purpose, exc.error_class, str(exc), exc.raw_text)
        return _Answer(None, call, failure)
    return _Answer(answer, ctx.call(row.user_id, model, purpose, "ok", **common))


def infer_row(client: anthropic.Anthropic, ctx: RunContext, row: InputRow) -> RowOutcome:
    """Primary request, then the escalation request for a high-stakes answer; never raises."""
    outcome = RowOutcome(row)
    try:
        first = _ask(client, ctx, row, ctx.primary, "primary")
        outcome.calls.append(first.call)
        if first.answer is None:
            outcome.failure, outcome.fatal = first.failure, first.fatal
            return outcome
        answer, model, escalated = first.answer, ctx.primary, False
        if ctx.escalation is not None and answer.recommendation_type in HIGH_STAKES:
            second = _ask(client, ctx, row, ctx.escalation, "escalation")
            outcome.calls.append(second.call)
            if second.answer is None:
                outcome.failure, outcome.fatal = second.failure, second.fatal
                return outcome
            answer, model, escalated = second.answer, ctx.escalation, True
        outcome.result = ctx.result(
            row,
            answer,
            model,
            escalated=escalated,
            input_tokens=sum(c["input_tokens"] for c in outcome.calls),
            output_tokens=sum(c["output_tokens"] for c in outcome.calls),
            cost_usd=outcome.cost_usd,
        )
    except Exception as exc:  # a bug or an unexpected SDK error: fail this row, keep the run
        outcome.failure = ctx.failure(
            row.user_id, ctx.primary, "primary", error_class(exc), repr(exc)
        )
    return outcome


class _Writer:
    """Group commit: a thread that commits whatever rows finished while it was busy.

    A commit (open the warehouse, three Arrow inserts, close) takes 10-40 ms. At API
    latencies of a second, rows trickle in and each gets its own small commit; when rows
    finish faster than that, each commit takes every row that finished during the previous
    one (at most ``MAX_ROWS_PER_COMMIT``), so committing never slows the requests down and
    a kill loses only the rows in flight and the ones waiting for the running commit.
    """

    def __init__(self, tally: Tally, workers: int):
        self.tally = tally
        self.queue: queue.Queue[RowOutcome | None] = queue.Queue(maxsize=MAX_ROWS_PER_COMMIT)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sandbox-infer-writer", daemon=True)
        self._thread.start()

    def put(self, outcome: RowOutcome) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(outcome)

    def close(self) -> None:
        """Commit everything queued, stop the thread, re-raise a commit error."""
        self.queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        closing = False
        while not closing:
            batch = [self.queue.get()]
            while len(batch) < MAX_ROWS_PER_COMMIT:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            closing = None in batch
            outcomes = [o for o in batch if o is not None]
            if not outcomes or self.error is not None:
                continue
            results = [o.result for o in outcomes if o.result]
            failures = [o.failure for o in outcomes if o.failure]
            calls = [c for o in outcomes for c in o.calls]
            try:
                store.commit(results=results, failures=failures, calls=calls)
            except BaseException as exc:  # keep draining so the main thread never blocks
                self.error = exc
                continue
            self.tally.count(results=results, failures=failures, calls=calls)


def run_realtime(
    ctx: RunContext,
    client: anthropic.Anthropic,
    rows: list[InputRow],
    *,
    workers: int,
    budget: Budget,
    progress: bool,
) -> Tally:
    """Infer ``rows`` and return the totals of what was committed."""
    tally = Tally()
    pending = iter(rows)
    in_flight: dict[Future, float] = {}
    fatal: tuple[anthropic.APIStatusError, str] | None = None
    stop = False
    bar = tqdm(
        total=len(rows), desc=f"infer {ctx.execution_date}", unit="row", disable=not progress
    )
    writer = _Writer(tally, workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox-infer")
    held = None  # a row whose worst case did not fit the budget while others were in flight
    try:
        while True:
            while not stop and len(in_flight) < workers:
                row, held = held or next(pending, None), None
                if row is None:
                    break
                worst = ctx.row_worst(row)
                if not budget.reserve(worst):
                    # With rows in flight, their reservations may settle lower: wait and retry
                    # this row. With nothing in flight the budget is truly spent: stop.
                    if in_flight:
                        held = row
                    else:
                        stop = True
                    break
                in_flight[pool.submit(infer_row, client, ctx, row)] = worst
            if not in_flight:
                break
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                reserved = in_flight.pop(future)
                outcome: RowOutcome = future.result()
                budget.settle(reserved, outcome.cost_usd)
                writer.put(outcome)
                if outcome.fatal is not None and fatal is None:
                    model = outcome.calls[-1]["model"] if outcome.calls else ctx.primary.id
                    fatal, stop = (outcome.fatal, model), True
            bar.update(len(finished))
            bar.set_postfix_str(f"${budget.spent_usd:.4f}", refresh=False)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for future in in_flight:  # interrupted: keep what the in-flight rows already paid for
            if future.done() and not future.cancelled() and future.exception() is None:
                writer.queue.put(future.result())
        bar.close()
        writer.close()
    if fatal is not None:
        exc, model = fatal
        raise SandboxError(f"stopped after {tally.done} rows: {explain_fatal(exc, model)}") from exc
    return tally
