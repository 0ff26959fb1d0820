"""Group commit: workers journal each answer, a writer thread commits them to DuckDB in groups.

A commit takes every entry since the previous one (at most one a second); while another
process holds the warehouse it retries until ``store.COMMIT_GIVE_UP_S``.
"""

from __future__ import annotations

import queue
import threading
import time

from sandbox.decision import store
from sandbox.decision.journal import Journal, JournalError
from sandbox.decision.summary import InferenceSummary
from sandbox.warehouse import WarehouseBusy

MAX_ROWS_PER_COMMIT = 1000
COMMIT_INTERVAL_S = 1.0
"""A group commit waits for more entries until this long after the previous commit began
(each commit costs ~20 ms, much of it fixed; every entry is journaled first, so waiting
costs no safety, only makes fewer, larger commits)."""


class Writer:
    """A thread that commits whatever entries arrived while it was busy (see the module).

    ``stalled`` is true while the warehouse is busy; ``error`` is set once it gave up.
    """

    def __init__(self, summary: InferenceSummary, journal: Journal):
        self.summary = summary
        self.journal = journal
        self.journal_error: JournalError | None = None
        # SimpleQueue: put and get in C, without Queue's Python-level conditions (every answer
        # passes through here once)
        self.queue: queue.SimpleQueue[dict | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.stalled = False
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
        busy_since: float | None = None
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
            if not batch:
                continue
            if self.error is not None:
                self.uncommitted += len(batch)
                batch = []
                continue
            rows = {
                key: [r for e in batch for r in e[key]] for key in ("results", "failures", "calls")
            }
            self.journal.sync()
            last_commit = time.monotonic()
            try:
                store.commit(**rows)
            except WarehouseBusy as exc:
                now = time.monotonic()
                busy_since = busy_since or now
                self.stalled = True
                if now - busy_since >= store.COMMIT_GIVE_UP_S:
                    self.error = exc
                time.sleep(0.2)
                continue
            except BaseException as exc:  # keep draining so no worker ever blocks
                self.error = exc
                continue
            busy_since, self.stalled = None, False
            self.summary.count(**rows)
            batch = []
