"""Batch inference through the Message Batches API: half price, resumable, never paid twice.
A create's intent is stored first (``decision.batch_jobs``), then the batch is created once,
without retries; after a lost answer, a listed batch is adopted only when its results prove it.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import anthropic
from tqdm.auto import tqdm

from sandbox.config import SandboxError, seconds_setting
from sandbox.decision import store
from sandbox.decision.batch_ingest import Carried, ingest
from sandbox.decision.outcome import api_reason, explain_fatal, is_fatal
from sandbox.decision.pricing import Budget
from sandbox.decision.prompt import PROMPT_VERSION, build_params
from sandbox.decision.records import RunContext
from sandbox.decision.store import InputRow, utcnow
from sandbox.decision.summary import InferenceSummary
from sandbox.ids import random_hex

MAX_REQUESTS_PER_BATCH = 50_000  # the API allows 100,000 or 256 MB, whichever comes first
RECONCILE_WINDOW = timedelta(minutes=10)  # clock skew: a listed batch may predate its intent

_SAFE_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_RETRY_LATER = (
    "even after the SDK's retries: its id is stored in decision.batch_jobs, so run the same "
    "command again later to collect it without paying again"
)


def custom_id_for(nonce: str, as_of: date, user_id: str) -> str:
    """The batch ``custom_id`` of a user: ``<nonce>-YYYYMMDD-<user_id>`` (user hashed if unsafe)."""
    readable = f"{nonce}-{as_of:%Y%m%d}-{user_id}"
    if _SAFE_ID.match(readable):
        return readable
    return f"{nonce}-{as_of:%Y%m%d}-h{hashlib.sha256(user_id.encode()).hexdigest()[:40]}"


@dataclass
class BatchRun:
    """The batch part of one run: what it submitted, collected, spent and left waiting."""

    ctx: RunContext
    client: anthropic.Anthropic
    budget: Budget
    summary: InferenceSummary
    poll_s: float
    deadline: float
    progress: bool
    stop: threading.Event
    waiting: list[str] = field(default_factory=list)
    interrupted: str | None = None
    reserved: dict[str, float] = field(default_factory=dict)
    proven: dict[str, list] = field(default_factory=dict)

    def resume(self) -> None:
        """Collect every Message Batch of the date still open in ``decision.batch_jobs``."""
        for batch_id, jobs in store.open_batches(self.ctx.as_of).items():
            if jobs[0]["status"] == "creating":
                adopted = self._reconcile(batch_id, jobs, reason="an earlier run stopped")
                if adopted is None:
                    continue
                batch_id, jobs = adopted, [{**j, "batch_id": adopted} for j in jobs]
            self.summary.batch_ids.append(batch_id)
            self._collect(batch_id, jobs)

    def submit(self, rows: list[InputRow]) -> None:
        """Send ``rows`` as new primary batches (as many as the budget admits) and collect them."""
        admitted: list[tuple[InputRow, float]] = []
        for row in rows:
            if not self.budget.reserve(worst := self.ctx.row_worst(row)):
                break
            admitted.append((row, worst))
        created = []
        for start in range(0, len(admitted), MAX_REQUESTS_PER_BATCH):
            chunk = admitted[start : start + MAX_REQUESTS_PER_BATCH]
            reserved = sum(worst for _, worst in chunk)
            created.append(self._create([r for r, _ in chunk], "primary", {}, reserved))
        for jobs in filter(None, created):
            self._collect(jobs[0]["batch_id"], jobs)

    def escalate(
        self, rows: list[tuple[InputRow, Carried]]
    ) -> tuple[list[dict], list[tuple[InputRow, Carried]]]:
        """Create the escalation batch for the answers that fit the budget; return it and the rest."""
        admitted, carried, over, reserved = [], {}, [], 0.0
        for row, spent in rows:
            worst = self.ctx.worst_cost(row, self.ctx.escalation)
            if self.budget.reserve(worst):
                admitted.append(row)
                carried[row.user_id], reserved = spent, reserved + worst
            else:
                over.append((row, spent))
        if not admitted:
            return [], over
        return self._create(admitted, "escalation", carried, reserved), over

    def _create(
        self, rows: list[InputRow], purpose: str, carried: dict[str, Carried], reserved: float
    ) -> list[dict]:
        """Store the intent, create one Message Batch, name the intent; its ``batch_jobs`` rows.
        ``reserved`` (the rows' worst case) is released unless the batch was created."""
        ctx = self.ctx
        model = ctx.primary if purpose == "primary" else ctx.escalation
        nonce = random_hex(12)
        intent, now = f"intent-{nonce}", utcnow()
        requests, jobs = [], []
        for row in rows:
            custom_id = custom_id_for(nonce, ctx.as_of, row.user_id)
            requests.append(
                {"custom_id": custom_id, "params": build_params(model, row.user_id, row.summary)}
            )
            tokens_in, tokens_out, cost, answer = carried.get(row.user_id, (0, 0, 0.0, None))
            jobs.append({
                "execution_date": ctx.as_of, "user_id": row.user_id, "batch_id": intent,
                "custom_id": custom_id, "purpose": purpose, "model": model.id,
                "prompt_version": PROMPT_VERSION, "run_id": ctx.run_id, "status": "creating",
                "carried_input_tokens": tokens_in, "carried_output_tokens": tokens_out,
                "carried_cost_usd": cost, "submitted_at": now, "input_sha": row.input_sha,
                "primary_answer": answer,
            })  # fmt: skip
        batch_id = None  # failed, or the outcome is still unknown (the next run looks again)
        try:
            store.commit_when_free(batch_jobs=jobs)  # the intent is stored before the create
            # no SDK retries: a retried create whose response was lost is a second batch
            batch = self.client.with_options(max_retries=0).messages.batches.create(
                requests=requests
            )
            store.commit_when_free(batch_updates=[(intent, batch.id, "in_progress")])
            batch_id = batch.id
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            if is_fatal(exc):
                store.commit_when_free(batch_updates=[(intent, intent, "not_created")])
                raise SandboxError(
                    f"could not create the Message Batch: {explain_fatal(exc, model.id)}"
                ) from exc
            batch_id = self._reconcile(intent, jobs, reason=api_reason(exc))
        finally:
            if batch_id is None:
                self.budget.settle(reserved, 0.0)
            else:
                self.reserved[batch_id] = reserved
        if batch_id is None and intent in self.waiting:
            return []
        if batch_id is None:
            raise SandboxError(
                f"could not create the Message Batch ({self.summary.notes[-1]}): run the same command "
                "again later (nothing was billed twice)"
            )
        self.summary.batch_ids.append(batch_id)
        return [{**job, "batch_id": batch_id, "status": "in_progress"} for job in jobs]

    def _reconcile(self, intent: str, jobs: list[dict], reason: str) -> str | None:
        """The create's outcome is unknown: adopt the batch it made once its results (every
        ``custom_id`` starts with the intent's nonce) prove it; ``None`` once none showed for
        ``SANDBOX_BATCH_CREATE_GRACE_S``, or time is up."""
        lost = f"the Message Batch create ended without an answer ({reason})"
        ours = {job["custom_id"] for job in jobs}
        submitted = jobs[0]["submitted_at"].replace(tzinfo=UTC)
        grace_s = seconds_setting("SANDBOX_BATCH_CREATE_GRACE_S", 120.0)
        grace_end = submitted + timedelta(seconds=grace_s)
        rejected: set[str] = set()
        while True:
            unproven = False
            for batch_id in self._candidates(intent, submitted, len(jobs), lost):
                if batch_id in rejected:
                    continue
                verdict = self._prove(batch_id, ours)
                if verdict == "ours":
                    store.commit_when_free(batch_updates=[(intent, batch_id, "in_progress")])
                    self.summary.notes.append(
                        f"{lost}; the API lists {batch_id} with the same {len(jobs)} requests "
                        "and its results carry this intent's ids: adopted it instead of "
                        "creating (and paying for) a second batch"
                    )
                    return batch_id
                if verdict == "not ours":
                    rejected.add(batch_id)
                unproven = unproven or verdict == "unknown"
            if not unproven and datetime.now(UTC) >= grace_end:
                store.commit_when_free(batch_updates=[(intent, intent, "not_created")])
                self.summary.notes.append(
                    f"{lost} and, for {grace_s:g} s, the API listed no batch made by it"
                    f"{f' ({len(rejected)} listed were not ours)' if rejected else ''}: nothing "
                    "was created, the rows stay pending"
                )
                return None
            if self.stop.is_set() or time.monotonic() >= self.deadline:
                self.waiting.append(intent)
                self.summary.notes.append(
                    f"{lost} and no batch is proven to be its own yet: the intent {intent} stays "
                    "open and the next run looks at the batch list again before creating anything"
                )
                return None
            self.stop.wait(self.poll_s)

    def _candidates(self, intent: str, submitted: datetime, size: int, lost: str) -> list[str]:
        """Listed batches created since the intent (less clock skew), unknown, of ``size``."""
        known = store.known_batch_ids()
        found = []
        try:
            for batch in self.client.messages.batches.list(limit=100):
                if batch.created_at < submitted - RECONCILE_WINDOW:
                    break
                total = sum(batch.request_counts.to_dict().values())
                if total == size and batch.id not in known:
                    found.append(batch.id)
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            raise SandboxError(
                f"{lost} and the batch list could not be read ({api_reason(exc)}): the intent "
                f"{intent} is stored; run the same command again and it checks the list again "
                "before creating anything"
            ) from exc
        return found[::-1]  # oldest first: created closest to the intent

    def _prove(self, batch_id: str, ours: set[str]) -> str:
        """Whether the batch's results carry only our ids: ``ours``, ``not ours`` or ``unknown``."""
        try:
            batch = self.client.messages.batches.retrieve(batch_id)
        except anthropic.NotFoundError:
            return "not ours"
        except (anthropic.APIStatusError, anthropic.APIConnectionError):
            return "unknown"
        if batch.processing_status != "ended":
            return "unknown"
        try:
            items, _ = self.items(batch_id, batch)
        except SandboxError:
            return "unknown"
        if not items or any(item.custom_id not in ours for item in items):
            return "not ours"  # someone else's (or no results left to prove it): never touched
        self.proven[batch_id] = items
        return "ours"

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
                    explain_fatal(exc, self.ctx.primary.id) if is_fatal(exc) else api_reason(exc)
                )
                raise SandboxError(
                    f"could not check Message Batch {batch_id} ({detail}), {_RETRY_LATER}"
                ) from exc
            if batch.processing_status == "ended":
                return "ended", batch
            bar.set_postfix_str(
                f"{batch_id} {batch.processing_status} {time.monotonic() - started:.0f}s",
                refresh=True,
            )
            if self.stop.is_set():
                self.interrupted = self.interrupted or "stop"
            if self.stop.is_set() or time.monotonic() >= self.deadline:
                return "waiting", None
            self.stop.wait(self.poll_s)

    def _collect(self, batch_id: str, jobs: list[dict]) -> None:
        """Wait for one stored batch, then ingest it (which may start an escalation batch)."""
        desc = f"batch {self.ctx.as_of} {jobs[0]['purpose']}"
        with tqdm(total=len(jobs), desc=desc, unit="row", disable=not self.progress) as bar:
            state, batch = self._poll(batch_id, bar)
            if state == "waiting":
                self.waiting.append(batch_id)
                return
            escalation = ingest(self, batch_id, batch, jobs)
            bar.set_postfix_str(f"{batch_id} ended", refresh=False)
            bar.update(len(jobs))
        if escalation:
            self._collect(escalation[0]["batch_id"], escalation)

    def items(self, batch_id: str, batch) -> tuple[list | None, str]:
        """The result items of an ended batch, or ``None`` and why they are unavailable."""
        if batch is None:
            return None, "is gone (404): deleted, or older than the API keeps batches"
        if batch_id in self.proven:  # downloaded to prove the batch ours
            return self.proven.pop(batch_id), ""
        if batch.results_url is None:
            return None, "ended without a results file"
        try:
            return list(self.client.messages.batches.results(batch_id)), ""
        except anthropic.NotFoundError:
            return None, "has no results any more (results are deleted 29 days after creation)"
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            raise SandboxError(
                f"could not download the results of Message Batch {batch_id} ({api_reason(exc)}), "
                f"{_RETRY_LATER}"
            ) from exc

    def note(self) -> None:
        """Dedupe the summary's batch ids; say which batches still process."""
        summary = self.summary
        summary.batch_ids = list(dict.fromkeys(summary.batch_ids))
        processing = [b for b in self.waiting if not b.startswith("intent-")]
        if processing:
            summary.notes.append(
                f"Message Batch {', '.join(processing)} is still processing; its id is stored in "
                f"decision.batch_jobs: run `sandbox infer --date {summary.execution_date} --mode "
                "batch` again to collect it"
            )
