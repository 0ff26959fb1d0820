"""Batch inference through the Message Batches API: half price, resumable by batch id.

A run first collects every Message Batch of the date that is still open in
``decision.batch_jobs`` (one row per request, written right after the batch is created and
before any polling), so a re-run after a crash resumes the same batch instead of paying
for it again. Then it submits the pending rows as new batches (``custom_id`` = date and
user), polls until each ends, and ingests the results: ``succeeded`` answers are
validated like realtime ones, ``errored``, ``canceled`` and ``expired`` requests become
failure rows (their users stay pending for the next run). High-stakes answers of the
primary batch are escalated in a second batch; its rows carry the primary request's
tokens and cost so the staged row shows the total. Everything is priced at the batch
discount.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import date

import anthropic
from tqdm.auto import tqdm

from sandbox.config import SandboxError
from sandbox.decision import store
from sandbox.decision.pricing import Budget, ModelPrice
from sandbox.decision.prompt import (
    HIGH_STAKES,
    PROMPT_VERSION,
    InvalidAnswer,
    build_params,
    parse_answer,
)
from sandbox.decision.records import RunContext, Tally, error_class, explain_fatal, is_fatal
from sandbox.decision.store import InputRow, utcnow

MAX_REQUESTS_PER_BATCH = 50_000
"""Requests per Message Batch (the API allows 100,000 or 256 MB, whichever comes first)."""

_SAFE_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def custom_id_for(execution_date: date, user_id: str) -> str:
    """The batch ``custom_id`` of a user and date: ``YYYYMMDD-<user_id>`` (hashed if unsafe)."""
    readable = f"{execution_date:%Y%m%d}-{user_id}"
    if _SAFE_ID.match(readable):
        return readable
    return f"{execution_date:%Y%m%d}-h{hashlib.sha256(user_id.encode()).hexdigest()[:40]}"


Carried = tuple[int, int, float]
"""Input tokens, output tokens and USD a row already spent before this request."""


@dataclass
class BatchRun:
    """The batch part of one run: what it submitted, collected, spent and left waiting."""

    ctx: RunContext
    client: anthropic.Anthropic
    budget: Budget
    poll_s: float
    deadline: float
    progress: bool
    tally: Tally = field(default_factory=Tally)
    waiting: list[str] = field(default_factory=list)
    batch_ids: list[str] = field(default_factory=list)
    _reserved: dict[str, float] = field(default_factory=dict)

    def resume(self) -> None:
        """Collect every Message Batch of the date still open in ``decision.batch_jobs``."""
        for batch_id, jobs in store.open_batches(self.ctx.execution_date).items():
            self.batch_ids.append(batch_id)
            self._collect(batch_id, jobs)

    def submit(self, rows: list[InputRow]) -> None:
        """Send ``rows`` as new primary batches (as many as the budget admits) and collect them."""
        admitted: list[InputRow] = []
        reserved = 0.0
        for row in rows:
            worst = self.ctx.row_worst(row)
            if not self.budget.reserve(worst):
                break
            admitted.append(row)
            reserved += worst
        created: list[list[dict]] = []
        for start in range(0, len(admitted), MAX_REQUESTS_PER_BATCH):
            chunk = admitted[start : start + MAX_REQUESTS_PER_BATCH]
            try:
                jobs = self._create(chunk, self.ctx.primary, "primary", carried={})
            except SandboxError:
                self.budget.settle(reserved * (len(admitted) - start) / len(admitted), 0.0)
                raise
            self._reserved[jobs[0]["batch_id"]] = reserved * len(chunk) / len(admitted)
            store.commit(batch_jobs=jobs)  # the batch id is stored before the first poll
            created.append(jobs)
        for jobs in created:
            self._collect(jobs[0]["batch_id"], jobs)

    def _create(
        self, rows: list[InputRow], model: ModelPrice, purpose: str, carried: dict[str, Carried]
    ) -> list[dict]:
        """Create one Message Batch; return its ``decision.batch_jobs`` rows (not yet stored)."""
        ctx = self.ctx
        requests = [
            {
                "custom_id": custom_id_for(ctx.execution_date, r.user_id),
                "params": build_params(model, r.user_id, r.summary),
            }
            for r in rows
        ]
        try:
            batch = self.client.messages.batches.create(requests=requests)
        except anthropic.APIStatusError as exc:
            if is_fatal(exc):
                raise SandboxError(
                    f"could not create the Message Batch: {explain_fatal(exc, model.id)}"
                ) from exc
            raise SandboxError(
                f"could not create the Message Batch ({error_class(exc)}: {exc}): the API kept "
                "failing after retries; run the same command again later"
            ) from exc
        except anthropic.APIConnectionError as exc:
            raise SandboxError(
                f"could not reach the API to create the Message Batch ({error_class(exc)}): check "
                "the network (or ANTHROPIC_BASE_URL) and run the same command again"
            ) from exc
        self.batch_ids.append(batch.id)
        now = utcnow()
        jobs = []
        for row, request in zip(rows, requests, strict=True):
            tokens_in, tokens_out, cost = carried.get(row.user_id, (0, 0, 0.0))
            jobs.append(
                {
                    "execution_date": ctx.execution_date,
                    "user_id": row.user_id,
                    "batch_id": batch.id,
                    "custom_id": request["custom_id"],
                    "purpose": purpose,
                    "model": model.id,
                    "prompt_version": PROMPT_VERSION,
                    "run_id": ctx.run_id,
                    "status": "in_progress",
                    "carried_input_tokens": tokens_in,
                    "carried_output_tokens": tokens_out,
                    "carried_cost_usd": cost,
                    "submitted_at": now,
                }
            )
        return jobs

    def _poll(self, batch_id: str, bar: tqdm) -> tuple[str, object]:
        """Poll until the batch ends: ``("ended", batch)``, ``("waiting", None)`` or ``("gone", None)``."""
        started = time.monotonic()
        while True:
            try:
                batch = self.client.messages.batches.retrieve(batch_id)
            except anthropic.NotFoundError:
                return "gone", None
            except anthropic.APIStatusError as exc:
                if is_fatal(exc):
                    raise SandboxError(
                        f"could not check Message Batch {batch_id}: "
                        f"{explain_fatal(exc, self.ctx.primary.id)}"
                    ) from exc
                raise
            if batch.processing_status == "ended":
                return "ended", batch
            bar.set_postfix_str(
                f"{batch_id} {batch.processing_status} {time.monotonic() - started:.0f}s",
                refresh=True,
            )
            if time.monotonic() >= self.deadline:
                return "waiting", None
            time.sleep(self.poll_s)

    def _collect(self, batch_id: str, jobs: list[dict]) -> None:
        """Wait for one stored batch, then ingest it (which may start an escalation batch)."""
        bar = tqdm(
            total=len(jobs),
            desc=f"batch {self.ctx.execution_date} {jobs[0]['purpose']}",
            unit="row",
            disable=not self.progress,
        )
        try:
            state, batch = self._poll(batch_id, bar)
            if state == "waiting":
                self.waiting.append(batch_id)
                return
            escalation = self._ingest(batch_id, batch, jobs)
            bar.set_postfix_str(f"{batch_id} ended", refresh=False)
            bar.update(len(jobs))
        finally:
            bar.close()
        if escalation:
            self._collect(escalation[0]["batch_id"], escalation)

    def _ingest(self, batch_id: str, batch, jobs: list[dict]) -> list[dict]:
        """Turn a finished batch into rows, create its escalation batch, commit it all at once."""
        ctx = self.ctx
        by_custom = {job["custom_id"]: job for job in jobs}
        inputs = store.input_rows(ctx.execution_date, [job["user_id"] for job in jobs])
        results: list[dict] = []
        failures: list[dict] = []
        calls: list[dict] = []
        escalate: list[tuple[InputRow, Carried]] = []
        spent = 0.0
        ended_at = None
        if batch is None or batch.results_url is None:
            why = "is gone (404)" if batch is None else "ended without a results file"
            for job in jobs:
                failures.append(
                    ctx.failure(
                        job["user_id"],
                        self._model(job),
                        job["purpose"],
                        "batch_results_unavailable",
                        f"Message Batch {batch_id} {why}; the row stays pending for the next run",
                    )
                )
        else:
            ended_at = batch.ended_at.replace(tzinfo=None) if batch.ended_at else None
            for item in self.client.messages.batches.results(batch_id):
                job = by_custom.pop(item.custom_id, None)
                if job is None:
                    continue
                model, purpose, user = self._model(job), job["purpose"], job["user_id"]
                outcome = item.result
                if outcome.type != "succeeded":
                    if outcome.type == "errored":
                        err = outcome.error.error
                        kind, message = f"batch_{err.type}", getattr(err, "message", "") or err.type
                    else:
                        kind, message = (
                            f"batch_{outcome.type}",
                            f"the request was {outcome.type} before it ran",
                        )
                    calls.append(
                        ctx.call(
                            user, model, purpose, outcome.type, error_class=kind, batch_id=batch_id
                        )
                    )
                    failures.append(ctx.failure(user, model, purpose, kind, message))
                    continue
                msg = outcome.message
                cost = ctx.cost(model, msg.usage.input_tokens, msg.usage.output_tokens)
                spent += cost
                usage = {
                    "input_tokens": msg.usage.input_tokens,
                    "output_tokens": msg.usage.output_tokens,
                    "cost_usd": cost,
                    "batch_id": batch_id,
                    "request_id": msg.id,
                }
                try:
                    answer = parse_answer(msg)
                except InvalidAnswer as exc:
                    calls.append(
                        ctx.call(
                            user, model, purpose, "invalid", error_class=exc.error_class, **usage
                        )
                    )
                    failures.append(
                        ctx.failure(user, model, purpose, exc.error_class, str(exc), exc.raw_text)
                    )
                    continue
                calls.append(ctx.call(user, model, purpose, "ok", **usage))
                total = (
                    job["carried_input_tokens"] + msg.usage.input_tokens,
                    job["carried_output_tokens"] + msg.usage.output_tokens,
                    job["carried_cost_usd"] + cost,
                )
                row = inputs.get(user)
                if row is None:
                    failures.append(
                        ctx.failure(
                            user,
                            model,
                            purpose,
                            "input_missing",
                            "the user is no longer in decision.inference_inputs for this date",
                        )
                    )
                elif (
                    purpose == "primary"
                    and ctx.escalation is not None
                    and answer.recommendation_type in HIGH_STAKES
                ):
                    escalate.append((row, total))
                else:
                    results.append(
                        ctx.result(
                            row,
                            answer,
                            model,
                            escalated=purpose == "escalation",
                            input_tokens=total[0],
                            output_tokens=total[1],
                            cost_usd=total[2],
                        )
                    )
            for job in by_custom.values():
                failures.append(
                    ctx.failure(
                        job["user_id"],
                        self._model(job),
                        job["purpose"],
                        "batch_missing_result",
                        f"Message Batch {batch_id} returned no result for {job['custom_id']}",
                    )
                )
        self.budget.settle(self._reserved.pop(batch_id, 0.0), spent)
        escalation_jobs: list[dict] = []
        error: SandboxError | None = None
        if escalate:
            try:
                escalation_jobs = self._escalate(escalate)
            except SandboxError as exc:
                error = exc
                failures.extend(
                    ctx.failure(
                        row.user_id, ctx.escalation, "escalation", "batch_not_created", str(exc)
                    )
                    for row, _ in escalate
                )
        store.commit(
            results=results,
            failures=failures,
            calls=calls,
            batch_jobs=escalation_jobs,
            ingested_batch=(batch_id, ended_at),
        )
        self.tally.count(results=results, failures=failures, calls=calls)
        if error is not None:
            raise error
        return escalation_jobs

    def _escalate(self, rows: list[tuple[InputRow, Carried]]) -> list[dict]:
        """Create the escalation batch for the high-stakes answers that fit the budget."""
        ctx = self.ctx
        admitted, reserved = [], 0.0
        for row, carried in rows:
            worst = ctx.worst_cost(row, ctx.escalation)
            if self.budget.reserve(worst):
                admitted.append((row, carried))
                reserved += worst
        if not admitted:
            return []
        try:
            jobs = self._create(
                [row for row, _ in admitted],
                ctx.escalation,
                "escalation",
                carried={row.user_id: carried for row, carried in admitted},
            )
        except SandboxError:
            self.budget.settle(reserved, 0.0)
            raise
        self._reserved[jobs[0]["batch_id"]] = reserved
        return jobs

    def _model(self, job: dict) -> ModelPrice:
        return self.ctx.book.get(job["model"])
