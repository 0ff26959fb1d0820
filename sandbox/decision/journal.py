"""The answer journal: every API response is on local disk before anything else happens to it:
one JSON line (one ``O_APPEND`` write, fsync before each commit); the next run commits what an
earlier one left."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import date, datetime
from pathlib import Path

from sandbox.config import SandboxError, warehouse_path
from sandbox.ids import new_id

_TIME_KEYS = ("called_at", "failed_at", "created_at")  # the timestamps of journaled rows


class JournalError(SandboxError):
    """The journal could not be written (e.g. the disk is full)."""


def journal_dir() -> Path:
    """The journal folder of the warehouse: ``<warehouse dir>/<stem>.journal``."""
    return warehouse_path().with_suffix(".journal")


# built once, not per entry; the only values JSON lacks are dates and timestamps (as ISO text)
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))


def _decode(row: dict) -> dict:
    row["execution_date"] = date.fromisoformat(row["execution_date"])
    for key in _TIME_KEYS:
        if isinstance(row.get(key), str):
            row[key] = datetime.fromisoformat(row[key])
    return row


class Journal:
    """One run's journal file: append entries, fsync in groups, delete it once all is committed."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or journal_dir()
        self.path: Path | None = None
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._dirty = False

    def append(self, entry: dict) -> None:
        """Write one entry (one ``write`` call); raises :class:`JournalError`."""
        entry.setdefault("id", new_id())
        line = (_ENCODER.encode(entry) + "\n").encode()
        with self._lock:
            try:
                if self._fd is None:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    self.path = self.folder / f"seg-{time.time_ns()}-{os.getpid()}.jsonl"
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                while line:  # one write, unless the disk takes only part of it
                    line = line[os.write(self._fd, line) :]
            except OSError as exc:
                raise JournalError(
                    f"cannot write the answer journal in {self.folder} ({exc.strerror or exc}): "
                    "free disk space there (or fix its permissions) and run again"
                ) from exc
            self._dirty = True

    def sync(self) -> None:
        """``fsync`` what was appended since the last sync (before a DuckDB commit)."""
        with self._lock:
            fd, dirty, self._dirty = self._fd, self._dirty, False
        if fd is not None and dirty:
            with suppress(OSError):  # the write itself succeeded: a process kill loses nothing
                os.fsync(fd)

    def close(self, *, all_committed: bool) -> None:
        """Close the file; with everything committed, delete it (once: a second close is a no-op)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if all_committed and self.path is not None:
                forget([self.path])
            self.path = None


def pending_files() -> list[Path]:
    """Journal files left in the journal folder, oldest first."""
    return sorted(journal_dir().glob("seg-*.jsonl"))


def read(files: list[Path]) -> Iterator[dict]:
    """Every complete entry of ``files`` (a half-written last line, from a kill, is skipped)."""
    for path in files:
        with open(path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    continue
                try:
                    entry = json.loads(line)
                    for key in ("calls", "results", "failures", "held"):
                        entry[key] = [_decode(r) for r in entry.get(key) or ()]
                except (ValueError, TypeError, KeyError):
                    continue
                yield entry


def forget(files: list[Path]) -> None:
    """Delete ingested journal files (and the folder when it is empty)."""
    for path in files:
        path.unlink(missing_ok=True)
    if files:
        with suppress(OSError):  # not empty: another run's journal is still there
            files[0].parent.rmdir()
