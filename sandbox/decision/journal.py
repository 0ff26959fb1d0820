"""The answer journal: every API response is on local disk before anything else happens to it.

One JSON line per response (one ``O_APPEND`` write; fsync before each commit). Commits are
idempotent and the next run commits what an earlier one left.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

from sandbox.config import SandboxError, warehouse_path
from sandbox.ids import new_id

SEGMENT_ENTRIES = 20_000
_write = os.write  # one name to replace in the full-disk drill
_TIME_KEYS = (
    "called_at",
    "failed_at",
    "created_at",
)  # the timestamps of journaled rows


class JournalError(SandboxError):
    """The journal could not be written (e.g. the disk is full)."""


def journal_dir(path: Path | None = None) -> Path:
    """The journal folder of the warehouse: ``<warehouse dir>/<stem>.journal``."""
    wh = path or warehouse_path()
    return wh.parent / f"{wh.stem}.journal"


def _encode(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot journal {type(value).__name__}")


_ENCODER = json.JSONEncoder(default=_encode, separators=(",", ":"))
"""One entry per line (what ``json.dumps(entry, default=_encode, separators=...)`` gives), built once."""


def _decode(row: dict) -> dict:
    """Turn the ISO strings of a read-back row into dates and datetimes again."""
    row["execution_date"] = date.fromisoformat(row["execution_date"])
    for key in _TIME_KEYS:
        if isinstance(row.get(key), str):
            row[key] = datetime.fromisoformat(row[key])
    return row


class Journal:
    """Append entries, fsync in groups, forget the segments whose entries are committed."""

    def __init__(self, folder: Path | None = None, segment_entries: int = SEGMENT_ENTRIES):
        self.folder = folder or journal_dir()
        self.segment_entries = segment_entries
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._segment = 0
        self._written = 0  # entries in the current segment
        self._open: dict[int, int] = {}  # segment -> entries not yet committed
        self._dirty = False
        self._closed = False
        self.appended = 0

    def _roll(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = [int(p.stem.split("-")[1]) for p in self.folder.glob("seg-*.jsonl")]
        self._segment = max([self._segment, *existing]) + 1
        path = self.folder / f"seg-{self._segment:06d}-{os.getpid()}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._written = 0
        self._open.setdefault(self._segment, 0)

    def append(self, entry: dict) -> int:
        """Write one entry (one ``write`` call); returns its segment. Raises :class:`JournalError`."""
        entry.setdefault("id", new_id())
        line = (_ENCODER.encode(entry) + "\n").encode()
        with self._lock:
            try:
                if self._fd is None or self._written >= self.segment_entries:
                    self._roll()
                while line:  # one write, unless the disk takes only part of it
                    written = _write(self._fd, line)
                    line = line[written:]
            except OSError as exc:
                raise JournalError(
                    f"cannot write the answer journal in {self.folder} ({exc.strerror or exc}): "
                    "free disk space there (or fix its permissions) and run again"
                ) from exc
            self._written += 1
            self._open[self._segment] = self._open.get(self._segment, 0) + 1
            self._dirty = True
            self.appended += 1
            return self._segment

    def sync(self) -> None:
        """``fsync`` what was appended since the last sync (before a DuckDB commit)."""
        with self._lock:
            fd, dirty, self._dirty = self._fd, self._dirty, False
        if fd is not None and dirty:
            try:
                os.fsync(fd)
            except OSError:
                pass  # the write itself succeeded: a process kill still loses nothing

    def committed(self, segments: list[int]) -> None:
        """Entries of these segments are in DuckDB; delete segments that are done and closed."""
        with self._lock:
            for segment in segments:
                self._open[segment] = self._open.get(segment, 1) - 1
            for segment, left in list(self._open.items()):
                if left <= 0 and segment != self._segment:
                    self._remove(segment)
                    del self._open[segment]

    def close(self, *, all_committed: bool) -> None:
        """Close the file; with everything committed, remove this run's segments (once)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if all_committed:
                for segment in list(self._open):
                    self._remove(segment)
                self._open.clear()
                _remove_if_empty(self.folder)

    def _remove(self, segment: int) -> None:
        for path in self.folder.glob(f"seg-{segment:06d}-*.jsonl"):
            path.unlink(missing_ok=True)


# -- reading what an earlier run left ----------------------------------------------------------


def pending_files(folder: Path | None = None) -> list[Path]:
    """Segment files left in the journal folder, oldest first."""
    folder = folder or journal_dir()
    if not folder.is_dir():
        return []
    return sorted(folder.glob("seg-*.jsonl"))


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
    """Delete ingested segment files (and the folder when it is empty)."""
    for path in files:
        path.unlink(missing_ok=True)
    if files:
        _remove_if_empty(files[0].parent)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
