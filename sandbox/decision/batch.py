"""Batch inference through the Message Batches API: half price, resumable, never paid twice.

Creating a batch:

1. the intent is committed first: one ``decision.batch_jobs`` row per request, status
   ``creating``, with the row's ``input_sha``, ``prompt_version`` and model;
2. ``POST /v1/messages/batches`` is sent once, without the SDK's retries (the API has no
   idempotency key, so a retried create whose first response was lost makes a second,
   billed batch);
3. on success the intent takes the batch id (status ``in_progress``). When the outcome is
   unknown (a timeout, a 5xx, a dropped connection, or a run killed after sending), the
   batch list is read. A batch is ours by proof, not by size: every ``custom_id`` starts
   with the nonce of its intent, so a listed batch with the same number of requests is only
   a candidate until its results show our ids; a batch that is not ours is never ingested
   nor cancelled. "Not created" (``not_created``, the rows pending again) is concluded only
   after the list has shown nothing for ``SANDBOX_BATCH_CREATE_GRACE_S``; until then the
   intent stays open and the next run looks again, so a late batch is adopted, not paid twice.

Collecting (this run's batches, and every open one of the date first): poll until the
batch ends, download the results and turn each item into a result, failure or retry with
:mod:`sandbox.decision.outcome`. A result whose row's input (``input_sha``) or prompt
changed since the batch was created is discarded (its cost stays in the ledger), and the
row is pending again. An ``invalid_request_error`` item is a permanent failure: the row is
not sent again until its input, the prompt or the model changes. High-stakes answers are
escalated in a second batch; a failed escalation keeps the primary answer
(``escalation_failed``), and escalations that do not fit the budget become failure rows
(``escalation_over_budget``). Results deleted after 29 days (or a batch gone) end as
failure rows the next run retries; a persistent error while polling or downloading stops
the run with the cause (the batch id stays stored for the next run).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import anthropic
from tqdm.auto import tqdm

from sandbox.config import SandboxError, batch_create_grace_s
from sandbox.decision import store
from sandbox.decision.outcome import from_batch_result
from sandbox.decision.pricing import Budget, ModelPrice
from sandbox.decision.prompt import HIGH_STAKES, PROMPT_VERSION, build_params, validate_answer
from sandbox.decision.records import RunContext, Tally, error_class, explain_fatal, is_fatal
from sandbox.decision.store import InputRow, utcnow

MAX_REQUESTS_PER_BATCH = 50_000
"""Requests per Message Batch (the API allows 100,000 or 256 MB, whichever comes first)."""
RECONCILE_WINDOW = timedelta(minutes=10)
"""How far before an intent a listed batch may have been created and still be adopted."""

_SAFE_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def custom_id_for(nonce: str, as_of: date, user_id: str) -> str:
    """The batch ``custom_id`` of a user: ``<nonce>-YYYYMMDD-<user_id>`` (user hashed if unsafe)."""
    readable = f"{nonce}-{as_of:%Y%m%d}-{user_id}"
    if _SAFE_ID.match(readable):
        return readable
    return f"{nonce}-{as_of:%Y%m%d}-h{hashlib.sha256(user_id.encode()).hexdigest()[:40]}"


Carried = tuple[int, int, float, str]
"""Input tokens, output tokens and USD a row already spent, and its primary answer (JSON)."""


def _api_reason(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return f"{error_class(exc)}{f' {status}' if status else ''}: {exc}"


@dataclass
class BatchRun:
    """The batch part of one run: what it submitted, collected, spent and left waiting."""

    ctx: RunContext
    client: anthropic.Anthropic
    budget: Budget
    poll_s: float
    deadline: float
    progress: bool
    stop: threading.Event = field(default_factory=threading.Event)
    tally: Tally = field(default_factory=Tally)
    waiting: list[str] = field(default_factory=list)
    batch_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: str | None = None
    _reserved: dict[str, float] = field(default_factory=dict)
    _proven: dict[str, list] = field(default_factory=dict)

    # -- the open batches of the date ----------------------------------------------------

    def resume(self) -> None:
        """Collect every Message Batch of the date still open in ``decision.batch_jobs``."""
        for batch_id, jobs in store.open_batches(self.ctx.execution_date).items():
            if jobs[0]["status"] == "creating":
                adopted = self._reconcile(batch_id, jobs, reason="an earlier run stopped")
                if adopted is None:
                    continue
                batch_id, jobs = adopted, [{**j, "batch_id": adopted} for j in jobs]
            self.batch_ids.append(batch_id)
            self._collect(batch_id, jobs)

    # -- creating ------------------------------------------------------------------------

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
            share = reserved * len(chunk) / len(admitted)
            try:
                jobs = self._create(chunk, self.ctx.primary, "primary", carried={})
            except SandboxError:
                self.budget.settle(reserved * (len(admitted) - start) / len(admitted), 0.0)
                raise
            if not jobs:  # the create's outcome is still unknown: the next run looks again
                self.budget.settle(share, 0.0)
                continue
            self._reserved[jobs[0]["batch_id"]] = share
            created.append(jobs)
        for jobs in created:
            self._collect(jobs[0]["batch_id"], jobs)

    def _create(
        self, rows: list[InputRow], model: ModelPrice, purpose: str, carried: dict[str, Carried]
    ) -> list[dict]:
        """Record the intent, create one Message Batch, name the intent; its ``batch_jobs`` rows."""
        ctx = self.ctx
        nonce = uuid.uuid4().hex[:12]
        intent = f"intent-{nonce}"
        requests = [
            {
                "custom_id": custom_id_for(nonce, ctx.execution_date, r.user_id),
                "params": build_params(model, r.user_id, r.summary),
            }
            for r in rows
        ]
        now = utcnow()
        jobs = []
        for row, request in zip(rows, requests, strict=True):
            tokens_in, tokens_out, cost, answer = carried.get(row.user_id, (0, 0, 0.0, None))
            jobs.append(
                {
                    "execution_date": ctx.execution_date,
                    "user_id": row.user_id,
                    "batch_id": intent,
                    "custom_id": request["custom_id"],
                    "purpose": purpose,
                    "model": model.id,
                    "prompt_version": PROMPT_VERSION,
                    "run_id": ctx.run_id,
                    "status": "creating",
                    "carried_input_tokens": tokens_in,
                    "carried_output_tokens": tokens_out,
                    "carried_cost_usd": cost,
                    "submitted_at": now,
                    "input_sha": row.input_sha,
                    "primary_answer": answer,
                }
            )
        store.commit_when_free(batch_jobs=jobs)  # the intent is stored before the create
        try:
            # no SDK retries: a retried create whose response was lost is a second batch
            batch = self.client.with_options(max_retries=0).messages.batches.create(
                requests=requests
            )
        except anthropic.APIStatusError as exc:
            if is_fatal(exc):
                store.commit_when_free(batch_updates=[(intent, intent, "not_created")])
                raise SandboxError(
                    f"could not create the Message Batch: {explain_fatal(exc, model.id)}"
                ) from exc
            batch_id = self._reconcile(intent, jobs, reason=_api_reason(exc))
        except anthropic.APIConnectionError as exc:
            batch_id = self._reconcile(intent, jobs, reason=_api_reason(exc))
        else:
            batch_id = batch.id
            store.commit_when_free(batch_updates=[(intent, batch_id, "in_progress")])
        if batch_id is None and intent in self.waiting:
            return []
        if batch_id is None:
            raise SandboxError(
                f"could not create the Message Batch ({self.notes[-1]}): run the same command "
                "again later (nothing was billed twice)"
            )
        self.batch_ids.append(batch_id)
        return [{**job, "batch_id": batch_id, "status": "in_progress"} for job in jobs]

    def _reconcile(self, intent: str, jobs: list[dict], reason: str) -> str | None:
        """The create's outcome is unknown: adopt the batch it made once its results prove it.

        Lists again every ``poll_s`` until a candidate is proven ours, or the grace window
        passed with none left to check (``not_created``), or the run's wait is over (the
        intent stays open for the next run). Returns the adopted batch id, else ``None``.
        """
        ours = {job["custom_id"] for job in jobs}
        submitted = jobs[0]["submitted_at"].replace(tzinfo=UTC)
        grace_end = submitted + timedelta(seconds=batch_create_grace_s())
        rejected: set[str] = set()
        while True:
            unproven = False
            for batch_id in self._candidates(intent, jobs, reason):
                if batch_id in rejected:
                    continue
                verdict = self._prove(batch_id, ours)
                if verdict == "ours":
                    return self._adopt(intent, batch_id, len(jobs), reason)
                if verdict == "not ours":
                    rejected.add(batch_id)
                unproven = unproven or verdict == "unknown"
            if not unproven and datetime.now(UTC) >= grace_end:
                store.commit_when_free(batch_updates=[(intent, intent, "not_created")])
                self.notes.append(
                    f"the Message Batch create ended without an answer ({reason}) and, for "
                    f"{batch_create_grace_s():g} s, the API listed no batch made by it"
                    f"{f' ({len(rejected)} listed were not ours)' if rejected else ''}: nothing "
                    "was created, the rows stay pending"
                )
                return None
            if self.stop.is_set() or time.monotonic() >= self.deadline:
                self.waiting.append(intent)
                self.notes.append(
                    f"the Message Batch create ended without an answer ({reason}) and no batch "
                    f"is proven to be its own yet: the intent {intent} stays open and the next "
                    "run looks at the batch list again before creating anything"
                )
                return None
            self.stop.wait(self.poll_s)

    def _candidates(self, intent: str, jobs: list[dict], reason: str) -> list[str]:
        """Listed batches created since the intent (less clock skew), unknown, of the same size."""
        since = jobs[0]["submitted_at"].replace(tzinfo=UTC) - RECONCILE_WINDOW
        known = store.known_batch_ids()
        found = []
        try:
            for batch in self.client.messages.batches.list(limit=100):
                if batch.created_at < since:
                    break
                counts = batch.request_counts
                total = (
                    counts.processing + counts.succeeded + counts.errored
                    + counts.canceled + counts.expired
                )  # fmt: skip
                if total == len(jobs) and batch.id not in known:
                    found.append(batch.id)
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            raise SandboxError(
                f"the Message Batch create ended without an answer ({reason}) and the batch "
                f"list could not be read ({_api_reason(exc)}): the intent {intent} is stored; "
                "run the same command again and it checks the list again before creating anything"
            ) from exc
        return found[::-1]  # oldest first: created closest to the intent

    def _prove(self, batch_id: str, ours: set[str]) -> str:
        """``ours`` when the batch's results carry only our ids, ``not ours``, or ``unknown`` yet."""
        try:
            batch = self.client.messages.batches.retrieve(batch_id)
        except anthropic.NotFoundError:
            return "not ours"
        except (anthropic.APIStatusError, anthropic.APIConnectionError):
            return "unknown"
        if batch.processing_status != "ended":
            return "unknown"
        try:
            items, _ = self._items(batch_id, batch)
        except SandboxError:
            return "unknown"
        if not items or any(item.custom_id not in ours for item in items):
            return "not ours"  # someone else's (or no results left to prove it): never touched
        self._proven[batch_id] = items
        return "ours"

    def _adopt(self, intent: str, batch_id: str, requests: int, reason: str) -> str:
        store.commit_when_free(batch_updates=[(intent, batch_id, "in_progress")])
        self.notes.append(
            f"the Message Batch create ended without an answer ({reason}); the API lists "
            f"{batch_id} with the same {requests} requests and its results carry this intent's "
            "ids: adopted it instead of creating (and paying for) a second batch"
        )
        return batch_id

    # -- collecting ----------------------------------------------------------------------

    def _poll(self, batch_id: str, bar: tqdm) -> tuple[str, object]:
        """Poll until the batch ends: ``("ended", batch)``, ``("waiting", None)`` or ``("gone", None)``."""
        started = time.monotonic()
        while True:
            try:
                batch = self.client.messages.batches.retrieve(batch_id)
            except anthropic.NotFoundError:
                return "gone", None
            except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
                detail = (
                    explain_fatal(exc, self.ctx.primary.id) if is_fatal(exc) else _api_reason(exc)
                )
                raise SandboxError(
                    f"could not check Message Batch {batch_id} ({detail}), even after the SDK's "
                    "retries: its id is stored in decision.batch_jobs, so run the same command "
                    "again later to collect it without paying again"
                ) from exc
            if batch.processing_status == "ended":
                return "ended", batch
            bar.set_postfix_str(
                f"{batch_id} {batch.processing_status} {time.monotonic() - started:.0f}s",
                refresh=True,
            )
            if self.stop.is_set():
                self.interrupted = self.interrupted or "stop"
                return "waiting", None
            if time.monotonic() >= self.deadline:
                return "waiting", None
            self.stop.wait(self.poll_s)

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

    def _items(self, batch_id: str, batch) -> tuple[list | None, str]:
        """The result items of an ended batch, or ``None`` and why they are unavailable."""
        if batch is None:
            return None, "is gone (404): deleted, or older than the API keeps batches"
        if batch_id in self._proven:  # downloaded to prove the batch ours
            return self._proven.pop(batch_id), ""
        if batch.results_url is None:
            return None, "ended without a results file"
        try:
            return list(self.client.messages.batches.results(batch_id)), ""
        except anthropic.NotFoundError:
            return None, "has no results any more (results are deleted 29 days after creation)"
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            raise SandboxError(
                f"could not download the results of Message Batch {batch_id} ({_api_reason(exc)}), "
                "even after the SDK's retries: its id is stored in decision.batch_jobs, so run the "
                "same command again later to collect it without paying again"
            ) from exc

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
        stale = 0
        ended_at = batch.ended_at.replace(tzinfo=None) if batch and batch.ended_at else None
        # rows whose escalation batch already exists (a run stopped before this ingest
        # committed): that batch brings their final answer, so they are not escalated twice
        awaiting = {
            j["user_id"]
            for jobs_ in store.open_batches(ctx.execution_date).values()
            for j in jobs_
            if j["purpose"] == "escalation" and j["batch_id"] != batch_id
        }
        items, why = self._items(batch_id, batch)
        for item in items or ():
            job = by_custom.pop(item.custom_id, None)
            if job is None:
                continue
            model, purpose, user = self._model(job), job["purpose"], job["user_id"]
            row = inputs.get(user)
            outcome = from_batch_result(item.result)
            usage: dict = {"batch_id": batch_id}
            if item.result.type == "succeeded":
                msg = item.result.message
                cost = ctx.cost(model, msg.usage.input_tokens, msg.usage.output_tokens)
                spent += cost
                usage.update(
                    input_tokens=msg.usage.input_tokens,
                    output_tokens=msg.usage.output_tokens,
                    cost_usd=cost,
                    request_id=msg.id,
                )
            changed = row is None or (
                job.get("input_sha") not in (None, row.input_sha)
                or job["prompt_version"] != PROMPT_VERSION
            )
            status = "stale" if changed else outcome.status
            call = ctx.call(user, model, purpose, status, error_class=outcome.error_class, **usage)
            # one ledger row per batch item, whichever run ingests it (idempotent)
            call["call_id"] = hashlib.sha256(f"{batch_id}/{item.custom_id}".encode()).hexdigest()[
                :32
            ]
            calls.append(call)
            if changed:  # the input or prompt changed since: the answer is not this row's
                stale += 1
                continue
            total = (
                job["carried_input_tokens"] + usage.get("input_tokens", 0),
                job["carried_output_tokens"] + usage.get("output_tokens", 0),
                job["carried_cost_usd"] + usage.get("cost_usd", 0.0),
            )
            if not outcome.is_result:
                kept = self._keep_primary(job, row, total)
                if kept is not None:
                    results.append(kept)
                else:
                    failures.append(
                        ctx.failure(
                            user, model, purpose, outcome.error_class or "unknown",
                            outcome.message, outcome.raw_text,
                            input_sha=row.input_sha, permanent=outcome.permanent,
                        )
                    )  # fmt: skip
                continue
            answer = outcome.answer
            if purpose == "primary" and user in awaiting:
                continue
            if (
                purpose == "primary"
                and ctx.escalation is not None
                and answer.recommendation_type in HIGH_STAKES
            ):
                primary_json = json.dumps({"model": model.id, "answer": answer.model_dump()})
                escalate.append((row, (*total, primary_json)))
            else:
                results.append(
                    ctx.result(
                        row, answer, model,
                        escalated=purpose == "escalation",
                        input_tokens=total[0], output_tokens=total[1], cost_usd=total[2],
                        escalation_status="escalated" if purpose == "escalation" else None,
                    )
                )  # fmt: skip
        if items is None:
            for job in by_custom.values():
                failures.append(
                    ctx.failure(
                        job["user_id"], self._model(job), job["purpose"],
                        "batch_results_unavailable",
                        f"Message Batch {batch_id} {why}; the row stays pending for the next run",
                        input_sha=job.get("input_sha"),
                    )
                )  # fmt: skip
        else:
            for job in by_custom.values():
                failures.append(
                    ctx.failure(
                        job["user_id"], self._model(job), job["purpose"], "batch_missing_result",
                        f"Message Batch {batch_id} returned no result for {job['custom_id']}",
                        input_sha=job.get("input_sha"),
                    )
                )  # fmt: skip
        if stale:
            self.notes.append(
                f"discarded {stale} answers of Message Batch {batch_id}: their input or prompt "
                "changed since it was created (the rows are pending again; the cost is in the ledger)"
            )
        self.budget.settle(self._reserved.pop(batch_id, 0.0), spent)
        escalation_jobs: list[dict] = []
        error: SandboxError | None = None
        if escalate:
            try:
                escalation_jobs, over = self._escalate(escalate)
            except SandboxError as exc:
                error, over = exc, []
                results.extend(
                    self._keep_primary(
                        {"primary_answer": c[3], "purpose": "escalation"}, row, c[:3]
                    )
                    for row, c in escalate
                )
            for row, carried in over:
                failures.append(
                    ctx.failure(
                        row.user_id, ctx.escalation, "escalation", "escalation_over_budget",
                        "the escalation request did not fit --max-cost-usd: the row stays pending "
                        "for the next run",
                        raw_text=carried[3], input_sha=row.input_sha,
                    )
                )  # fmt: skip
            if over:
                self.notes.append(
                    f"{len(over)} high-stakes rows did not fit the budget for their escalation: "
                    "recorded as failures (escalation_over_budget), pending for the next run"
                )
        store.commit_when_free(
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

    def _keep_primary(self, job: dict, row: InputRow | None, total: tuple) -> dict | None:
        """A failed escalation keeps the primary answer it carries (never bought again)."""
        if job["purpose"] != "escalation" or not job.get("primary_answer") or row is None:
            return None
        kept = json.loads(job["primary_answer"])
        return self.ctx.result(
            row,
            validate_answer(kept["answer"]),
            self.ctx.book.get(kept["model"]),
            escalated=False,
            input_tokens=total[0],
            output_tokens=total[1],
            cost_usd=total[2],
            escalation_status="escalation_failed",
        )

    def _escalate(
        self, rows: list[tuple[InputRow, Carried]]
    ) -> tuple[list[dict], list[tuple[InputRow, Carried]]]:
        """Create the escalation batch for the answers that fit the budget; return it and the rest."""
        ctx = self.ctx
        admitted, over, reserved = [], [], 0.0
        for row, carried in rows:
            worst = ctx.worst_cost(row, ctx.escalation)
            if self.budget.reserve(worst):
                admitted.append((row, carried))
                reserved += worst
            else:
                over.append((row, carried))
        if not admitted:
            return [], over
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
        if not jobs:
            self.budget.settle(reserved, 0.0)
            return [], over
        self._reserved[jobs[0]["batch_id"]] = reserved
        return jobs, over

    def _model(self, job: dict) -> ModelPrice:
        return self.ctx.book.get(job["model"])
