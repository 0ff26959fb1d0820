"""Settle a batch create whose answer was lost: a listed batch is ours only by proof.

Every ``custom_id`` starts with its intent's nonce; "not created" is concluded only after
the list showed nothing for ``SANDBOX_BATCH_CREATE_GRACE_S``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anthropic

from sandbox.config import SandboxError, batch_create_grace_s
from sandbox.decision import store
from sandbox.decision.outcome import api_reason

if TYPE_CHECKING:
    from sandbox.decision.batch import BatchRun

RECONCILE_WINDOW = timedelta(minutes=10)
"""How far before an intent a listed batch may have been created (clock skew) and be a candidate."""


def reconcile(run: BatchRun, intent: str, jobs: list[dict], reason: str) -> str | None:
    """The create's outcome is unknown: adopt the batch it made once its results prove it.

    Lists again every ``poll_s`` until a candidate is proven, the grace window passed, or the
    run's wait is over. Returns the adopted batch id, else ``None``.
    """
    ours = {job["custom_id"] for job in jobs}
    submitted = jobs[0]["submitted_at"].replace(tzinfo=UTC)
    grace_end = submitted + timedelta(seconds=batch_create_grace_s())
    rejected: set[str] = set()
    while True:
        unproven = False
        for batch_id in _candidates(run, intent, jobs, reason):
            if batch_id in rejected:
                continue
            verdict = _prove(run, batch_id, ours)
            if verdict == "ours":
                return _adopt(run, intent, batch_id, len(jobs), reason)
            if verdict == "not ours":
                rejected.add(batch_id)
            unproven = unproven or verdict == "unknown"
        if not unproven and datetime.now(UTC) >= grace_end:
            store.commit_when_free(batch_updates=[(intent, intent, "not_created")])
            run.notes.append(
                f"the Message Batch create ended without an answer ({reason}) and, for "
                f"{batch_create_grace_s():g} s, the API listed no batch made by it"
                f"{f' ({len(rejected)} listed were not ours)' if rejected else ''}: nothing "
                "was created, the rows stay pending"
            )
            return None
        if run.stop.is_set() or time.monotonic() >= run.deadline:
            run.waiting.append(intent)
            run.notes.append(
                f"the Message Batch create ended without an answer ({reason}) and no batch "
                f"is proven to be its own yet: the intent {intent} stays open and the next "
                "run looks at the batch list again before creating anything"
            )
            return None
        run.stop.wait(run.poll_s)


def _candidates(run: BatchRun, intent: str, jobs: list[dict], reason: str) -> list[str]:
    """Listed batches created since the intent (less clock skew), unknown, of the same size."""
    since = jobs[0]["submitted_at"].replace(tzinfo=UTC) - RECONCILE_WINDOW
    known = store.known_batch_ids()
    found = []
    try:
        for batch in run.client.messages.batches.list(limit=100):
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
            f"list could not be read ({api_reason(exc)}): the intent {intent} is stored; "
            "run the same command again and it checks the list again before creating anything"
        ) from exc
    return found[::-1]  # oldest first: created closest to the intent


def _prove(run: BatchRun, batch_id: str, ours: set[str]) -> str:
    """``ours`` when the batch's results carry only our ids, ``not ours``, or ``unknown`` yet."""
    try:
        batch = run.client.messages.batches.retrieve(batch_id)
    except anthropic.NotFoundError:
        return "not ours"
    except (anthropic.APIStatusError, anthropic.APIConnectionError):
        return "unknown"
    if batch.processing_status != "ended":
        return "unknown"
    try:
        items, _ = run.items(batch_id, batch)
    except SandboxError:
        return "unknown"
    if not items or any(item.custom_id not in ours for item in items):
        return "not ours"  # someone else's (or no results left to prove it): never touched
    run.proven[batch_id] = items
    return "ours"


def _adopt(run: BatchRun, intent: str, batch_id: str, requests: int, reason: str) -> str:
    store.commit_when_free(batch_updates=[(intent, batch_id, "in_progress")])
    run.notes.append(
        f"the Message Batch create ended without an answer ({reason}); the API lists "
        f"{batch_id} with the same {requests} requests and its results carry this intent's "
        "ids: adopted it instead of creating (and paying for) a second batch"
    )
    return batch_id
