"""Ingest a finished Message Batch: each item becomes a ledger row and a result, a failure
or an escalation; everything of one batch is committed in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandbox.config import SandboxError
from sandbox.decision import store
from sandbox.decision.outcome import from_batch_result
from sandbox.decision.prompt import HIGH_STAKES, PROMPT_VERSION, validate_answer
from sandbox.decision.store import InputRow

if TYPE_CHECKING:
    from sandbox.decision.batch import BatchRun

Carried = tuple[int, int, float, str]  # tokens in, out and USD already spent; primary answer JSON


@dataclass
class _Ingest:
    """What ingesting one batch collects before its single commit."""

    batch_id: str
    jobs: dict[str, dict]
    results: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    escalate: list[tuple[InputRow, Carried]] = field(default_factory=list)
    spent: float = 0.0
    stale: int = 0


def ingest(run: BatchRun, batch_id: str, batch, jobs: list[dict]) -> list[dict]:
    """Turn a finished batch into rows, create its escalation batch, commit it all at once."""
    got = _Ingest(batch_id, {job["custom_id"]: job for job in jobs})
    inputs = store.input_rows(run.ctx.as_of, [job["user_id"] for job in jobs])
    # rows whose escalation batch already exists (a run stopped before this ingest
    # committed): that batch brings their final answer, so they are not escalated twice
    awaiting = {
        j["user_id"]
        for jobs_ in store.open_batches(run.ctx.as_of).values()
        for j in jobs_
        if j["purpose"] == "escalation" and j["batch_id"] != batch_id
    }
    items, why = run.items(batch_id, batch)
    for item in items or ():
        job = got.jobs.pop(item.custom_id, None)
        if job is not None:
            _take(run, got, job, item, inputs.get(job["user_id"]), awaiting)
    _missing(run, got, why or None)
    run.budget.settle(run.reserved.pop(batch_id, 0.0), got.spent)
    escalation_jobs, error = _escalate_or_keep(run, got)
    ended_at = batch.ended_at.replace(tzinfo=None) if batch and batch.ended_at else None
    store.commit_when_free(
        results=got.results, failures=got.failures, calls=got.calls,
        batch_jobs=escalation_jobs, ingested_batch=(batch_id, ended_at),
    )  # fmt: skip
    run.summary.count(results=got.results, failures=got.failures, calls=got.calls)
    if error is not None:
        raise error
    return escalation_jobs


def _take(
    run: BatchRun, got: _Ingest, job: dict, item, row: InputRow | None, awaiting: set
) -> None:
    """One result item: its ledger row, then a result, a failure or an escalation."""
    ctx = run.ctx
    model, purpose, user = ctx.book.get(job["model"]), job["purpose"], job["user_id"]

    outcome = from_batch_result(item.result)
    usage: dict = {"batch_id": got.batch_id}
    if item.result.type == "succeeded":
        msg = item.result.message
        cost = ctx.cost(model, msg.usage.input_tokens, msg.usage.output_tokens)
        got.spent += cost
        usage.update(
            input_tokens=msg.usage.input_tokens, output_tokens=msg.usage.output_tokens,
            cost_usd=cost, request_id=msg.id,
        )  # fmt: skip
    changed = row is None or (
        job.get("input_sha") not in (None, row.input_sha) or job["prompt_version"] != PROMPT_VERSION
    )
    status = "stale" if changed else outcome.status
    # one ledger row per batch item, whichever run ingests it (idempotent)
    call_id = hashlib.sha256(f"{got.batch_id}/{item.custom_id}".encode()).hexdigest()[:32]
    call = ctx.call(
        user, model, purpose, status, error_class=outcome.error_class, call_id=call_id, **usage
    )
    got.calls.append(call)
    if changed:  # the input or prompt changed since: the answer is not this row's
        got.stale += 1
        return
    total = (
        job["carried_input_tokens"] + usage.get("input_tokens", 0),
        job["carried_output_tokens"] + usage.get("output_tokens", 0),
        job["carried_cost_usd"] + usage.get("cost_usd", 0.0),
    )
    if outcome.kind != "result":
        if purpose == "escalation" and job.get("primary_answer"):
            got.results.append(keep_primary(run, job["primary_answer"], row, total))
        else:
            got.failures.append(ctx.dead_letter(row, model, purpose, outcome))
        return
    answer = outcome.answer
    if purpose == "primary" and user in awaiting:
        return
    if purpose == "primary" and ctx.escalation and answer.recommendation_type in HIGH_STAKES:
        primary_json = json.dumps({"model": model.id, "answer": answer.model_dump()})
        got.escalate.append((row, (*total, primary_json)))
        return
    got.results.append(ctx.result(
        row, answer, model, input_tokens=total[0], output_tokens=total[1], cost_usd=total[2],
        escalation_status="escalated" if purpose == "escalation" else None,
    ))  # fmt: skip


def _missing(run: BatchRun, got: _Ingest, why: str | None) -> None:
    """Failure rows for requests with no result (``why``: the results are unavailable)."""
    for job in got.jobs.values():
        cls, message = (
            ("batch_results_unavailable", f"{why}; the row stays pending for the next run")
            if why is not None
            else ("batch_missing_result", f"returned no result for {job['custom_id']}")
        )
        message = f"Message Batch {got.batch_id} {message}"
        got.failures.append(run.ctx.failure(
            job["user_id"], run.ctx.book.get(job["model"]), job["purpose"], cls, message,
            input_sha=job.get("input_sha"),
        ))  # fmt: skip
    if got.stale:
        run.summary.notes.append(
            f"discarded {got.stale} answers of Message Batch {got.batch_id}: their input or "
            "prompt changed since it was created (the rows are pending again; the cost is in "
            "the ledger)"
        )


def _escalate_or_keep(run: BatchRun, got: _Ingest) -> tuple[list[dict], SandboxError | None]:
    """Create the escalation batch; on failure keep the primary answers, raise afterwards."""
    if not got.escalate:
        return [], None
    jobs: list[dict] = []
    error: SandboxError | None = None
    try:
        jobs, over = run.escalate(got.escalate)
    except SandboxError as exc:
        error, over = exc, []
        for row, carried in got.escalate:
            got.results.append(keep_primary(run, carried[3], row, carried[:3]))
    for row, carried in over:
        got.failures.append(run.ctx.failure(
            row.user_id, run.ctx.escalation, "escalation", "escalation_over_budget",
            "the escalation request did not fit --max-cost-usd: the row stays pending "
            "for the next run",
            raw_text=carried[3], input_sha=row.input_sha,
        ))  # fmt: skip
    if over:
        run.summary.notes.append(
            f"{len(over)} high-stakes rows did not fit the budget for their escalation: "
            "recorded as failures (escalation_over_budget), pending for the next run"
        )
    return jobs, error


def keep_primary(run: BatchRun, primary_json: str, row: InputRow, total: tuple) -> dict:
    """A failed escalation keeps the primary answer it carries (never bought again)."""
    kept = json.loads(primary_json)
    return run.ctx.result(
        row, validate_answer(kept["answer"]), run.ctx.book.get(kept["model"]),
        input_tokens=total[0], output_tokens=total[1], cost_usd=total[2],
        escalation_status="escalation_failed",
    )  # fmt: skip
