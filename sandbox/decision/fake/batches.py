"""Message Batches in the fake: where they are kept and how their status moves with time.

Two files per batch in the state directory (else in memory); answers are decided at create
time. The lifecycle is in docs/offline-fake.md, "Batches".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandbox.decision.fake.errors import ApiError
from sandbox.decision.fake.limits import rfc3339

__all__ = ["ARCHIVE_S", "EXPIRY_S", "BatchStore", "final_kinds", "final_results", "view"]

EXPIRY_S = 24 * 3600.0
ARCHIVE_S = 29 * 24 * 3600.0
_ID = re.compile(r"[A-Za-z0-9_-]+")


def _timeline(state: dict) -> tuple[float, str]:
    """When processing ends, and why: ``done``, ``canceled`` or ``expired``."""
    created = state["created_at"]
    finish = created + state["batch_seconds"]
    expires = created + EXPIRY_S
    cancel = state.get("cancel_initiated_at")
    if cancel is not None and cancel < min(finish, expires):
        return min(cancel + (finish - cancel) / 4, expires), "canceled"
    if finish <= expires:
        return finish, "done"
    return expires, "expired"


def _cut(state: dict) -> tuple[str, float]:
    """Why processing ends, and the time after which an unfinished request is cut."""
    end, why = _timeline(state)
    return why, state["cancel_initiated_at"] if why == "canceled" else end


def _finished(state: dict, i: int, n: int, cut: float) -> bool:
    return state["created_at"] + state["batch_seconds"] * (i + 1) / n <= cut


def final_kinds(state: dict) -> list[str]:
    """Each result's type once the batch has ended (unfinished requests canceled or expired)."""
    kinds = state["kinds"]
    why, cut = _cut(state)
    if why == "done":
        return list(kinds)
    n = len(kinds)
    return [kind if _finished(state, i, n, cut) else why for i, kind in enumerate(kinds)]


def final_results(state: dict, results: list[dict]) -> list[dict]:
    """The results file of an ended batch (unfinished requests canceled or expired)."""
    why, cut = _cut(state)
    if why == "done":
        return results
    n = len(results)
    return [
        item
        if _finished(state, i, n, cut)
        else {"custom_id": item["custom_id"], "result": {"type": why}}
        for i, item in enumerate(results)
    ]


def view(state: dict, now: float, base_url: str, *, hold: bool = False) -> dict:
    """The ``MessageBatch`` object for ``state`` as of ``now``; ``hold``: not ended yet."""
    end, _ = _timeline(state)
    ended = now >= end and not (hold and now < state["created_at"] + EXPIRY_S)
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if ended:
        for kind in final_kinds(state):
            counts[kind] += 1
    else:
        counts["processing"] = len(state["kinds"])
    created = state["created_at"]
    cancel = state.get("cancel_initiated_at")
    status = "ended" if ended else "canceling" if cancel is not None else "in_progress"
    return {
        "id": state["id"],
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "created_at": rfc3339(created),
        "expires_at": rfc3339(created + EXPIRY_S),
        "ended_at": rfc3339(end) if ended else None,
        "archived_at": rfc3339(created + ARCHIVE_S) if now >= created + ARCHIVE_S else None,
        "cancel_initiated_at": rfc3339(cancel) if cancel is not None else None,
        "results_url": f"{base_url}/v1/messages/batches/{state['id']}/results" if ended else None,
    }


class BatchStore:
    """Stored batches: ``<id>.json`` (status) and ``<id>.jsonl`` (results) in ``state_dir``,
    or dicts in memory. A poll reads only the small status file."""

    def __init__(self, state_dir: Path | None = None):
        self.state_dir = Path(state_dir) if state_dir else None
        self._memory: dict[str, dict] = {}
        self._memory_results: dict[str, list[dict]] = {}
        self._lock = threading.Lock()

    def _write(self, target: Path, text: str) -> None:
        tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, target)

    def create(self, state: dict, results: list[dict]) -> None:
        """Store a new batch: its results first, then its status (so a listed batch is whole)."""
        state["kinds"] = [r["result"]["type"] for r in results]
        if self.state_dir is None:
            self._memory_results[state["id"]] = results
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            lines = "".join(json.dumps(r) + "\n" for r in results)
            self._write(self.state_dir / f"{state['id']}.jsonl", lines)
        self.save(state)

    def save(self, state: dict) -> None:
        """Store a batch's status (atomically: a reader never sees half a file)."""
        if self.state_dir is None:
            self._memory[state["id"]] = state
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write(self.state_dir / f"{state['id']}.json", json.dumps(state))

    def load(self, batch_id: str) -> dict | None:
        """The stored batch's status, or ``None``."""
        if self.state_dir is None:
            return self._memory.get(batch_id)
        if not _ID.fullmatch(batch_id):
            return None
        try:
            state = json.loads((self.state_dir / f"{batch_id}.json").read_text())
        except FileNotFoundError:
            return None
        return state if "kinds" in state else None  # a file of an older fake: gone

    def get(self, batch_id: str) -> dict:
        """The stored batch's status, or a 404 ``not_found_error``."""
        state = self.load(batch_id)
        if state is None:
            raise ApiError(404, "not_found_error", f"message batch {batch_id} not found")
        return state

    def results(self, batch_id: str) -> list[dict]:
        """The stored batch's results, in results order."""
        if self.state_dir is None:
            return self._memory_results.get(batch_id, [])
        text = (self.state_dir / f"{batch_id}.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line]

    def delete(self, batch_id: str) -> None:
        """Remove a stored batch."""
        if self.state_dir is None:
            self._memory.pop(batch_id, None)
            self._memory_results.pop(batch_id, None)
        else:
            (self.state_dir / f"{batch_id}.json").unlink(missing_ok=True)
            (self.state_dir / f"{batch_id}.jsonl").unlink(missing_ok=True)

    @contextlib.contextmanager
    def _updating(self) -> Iterator[None]:
        """Hold the store for a read-modify-write (threads here, and other processes)."""
        with self._lock:
            if self.state_dir is None:
                yield
                return
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with open(self.state_dir / ".lock", "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def cancel(self, batch_id: str, now: float) -> dict:
        """Start canceling a batch that is in progress (no change otherwise); the batch."""
        with self._updating():
            state = self.get(batch_id)
            if state.get("cancel_initiated_at") is None and now < _timeline(state)[0]:
                state["cancel_initiated_at"] = now
                self.save(state)
        return state

    def first_retrieve(self, batch_id: str) -> tuple[dict, bool]:
        """The batch, and whether this is its first retrieve (recorded, across processes)."""
        with self._updating():
            state = self.get(batch_id)
            first = state["batch_seconds"] > 0 and not state.get("retrieved")
            if first:
                state["retrieved"] = True
                self.save(state)
        return state, first

    def all(self) -> list[dict]:
        """Every stored batch, newest first (as ``GET /v1/messages/batches`` lists them)."""
        if self.state_dir is None:
            states = list(self._memory.values())
        else:
            states = []
            for path in self.state_dir.glob("*.json") if self.state_dir.exists() else []:
                try:
                    state = json.loads(path.read_text())
                except (FileNotFoundError, json.JSONDecodeError):
                    continue
                if "kinds" in state:
                    states.append(state)
        return sorted(states, key=lambda s: (s["created_at"], s["id"]), reverse=True)

    def page(self, query: dict[str, Any], now: float, base_url: str) -> dict:
        """One page of the batch list: ``limit`` (1-1000, default 20), ``after_id``, ``before_id``."""
        raw_limit = query.get("limit", "20")
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            raise ApiError.invalid(f"limit: Input should be between 1 and 1000, got {raw_limit}")
        states = self.all()
        ids = [s["id"] for s in states]
        after, before = query.get("after_id"), query.get("before_id")
        if after and before:
            raise ApiError.invalid("after_id and before_id cannot both be set")
        if after:
            start = ids.index(after) + 1 if after in ids else len(ids)
            chosen, has_more = states[start : start + limit], len(states) > start + limit
        elif before:
            stop = ids.index(before) if before in ids else 0
            chosen, has_more = states[max(0, stop - limit) : stop], stop - limit > 0
        else:
            chosen, has_more = states[:limit], len(states) > limit
        data = [view(s, now, base_url) for s in chosen]
        return {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
