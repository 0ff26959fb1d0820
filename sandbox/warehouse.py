"""DuckDB connections and the step lock (each plane creates and migrates its own tables).

DuckDB lets one process write a file at a time, so every helper here opens a connection for
one step and closes it: a notebook, the CLI and Airflow tasks take turns.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sandbox.config import SandboxError, warehouse_path


class WarehouseBusy(SandboxError):
    """Another process holds the DuckDB file's write lock."""


_LOCK_PID = re.compile(r"PID (\d+)")

WAIT_S = 30.0  # how long a connection in a step (or a reader) waits for its turn

_step_guard = threading.Lock()
_step_state: dict = {"depth": 0, "fd": None}


def _busy(holder: str, path: Path) -> WarehouseBusy:
    return WarehouseBusy(
        f"warehouse is in use by {holder} ({path}): wait for that step to finish, or stop "
        "it (a notebook kernel holding a connection counts), then try again"
    )


@contextmanager
def step_lock(step: str) -> Iterator[None]:
    """Hold the warehouse for one whole step (a build, an inference run, a pipeline run): an
    advisory lock on ``<warehouse>.lock``, re-entrant, released by the OS when the holder dies."""
    path = warehouse_path()
    with _step_guard:
        if not _step_state["depth"]:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                os.close(fd)
                raise _busy(holder or "another process", path) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"PID {os.getpid()} ({step})".encode(), 0)
            _step_state["fd"] = fd
        _step_state["depth"] += 1
    try:
        yield
    finally:
        with _step_guard:
            _step_state["depth"] -= 1
            if not _step_state["depth"]:
                fd, _step_state["fd"] = _step_state["fd"], None
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


@dataclass
class _Attached:
    """A warehouse file attached to the process's host database, and how many use it."""

    alias: str
    read_only: bool
    users: int = 0


_host_lock = threading.Lock()
_host: dict = {"con": None, "seq": 0}
_attached: dict[str, _Attached] = {}
_orphans: list = []  # hosts inherited through fork(): never used nor closed in the child


def _after_fork_in_child() -> None:
    # A child inherits the parent's DuckDB instance but none of its threads: using or
    # closing it could hang, so the child keeps it untouched and starts its own.
    global _host_lock
    if _host["con"] is not None:
        _orphans.append(_host["con"])
    _host["con"] = None
    _attached.clear()
    _host_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)

_IN_USE = ("lock", "unique file handle conflict")  # DuckDB's "someone else has the file"


def _attach(path: Path, read_only: bool) -> tuple[duckdb.DuckDBPyConnection, _Attached] | None:
    """A cursor on ``path``, attached if need be; None when a writer asks for a file this
    process has attached read-only (wait for the readers). DuckDB's error if held elsewhere."""
    key = str(path.resolve())
    with _host_lock:
        if _host["con"] is None:
            _host["con"] = duckdb.connect(":memory:")
        host = _host["con"]
        entry = _attached.get(key)
        if entry is None:
            entry = _Attached(_alias(path), read_only)
            literal = "'" + str(path).replace("'", "''") + "'"
            host.execute(
                f'attach {literal} as "{entry.alias}"{" (read_only)" if read_only else ""}'
            )
            _attached[key] = entry
        elif entry.read_only and not read_only:
            return None
        entry.users += 1
        cursor = host.cursor()
    try:
        cursor.execute(f'use "{entry.alias}"')
    except BaseException:
        _release(key, entry, cursor)
        raise
    return cursor, entry


def _alias(path: Path) -> str:
    """The file's stem, as ``duckdb.connect(path)`` names the catalog (dbt's compiled SQL names
    it); another file with the same stem attached at the same time gets a numbered name."""
    taken = {e.alias.lower() for e in _attached.values()} | {"memory", "system", "temp", "main"}
    stem = path.stem
    if stem and stem.lower() not in taken and '"' not in stem:
        return stem
    _host["seq"] += 1
    return f"warehouse_{_host['seq']}"


def _release(key: str, entry: _Attached, cursor: duckdb.DuckDBPyConnection) -> None:
    try:
        cursor.close()
    finally:
        with _host_lock:
            entry.users -= 1
            if entry.users == 0 and _attached.get(key) is entry:
                del _attached[key]
                _host["con"].execute(f'detach "{entry.alias}"')


@contextmanager
def connect(
    read_only: bool = False, path: Path | None = None, wait_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for one short piece of work; in a step (:func:`step_lock`) and for
    reads a busy file is waited for up to ``wait_s``, else a writer gets :class:`WarehouseBusy`."""
    path = path or warehouse_path()
    if read_only and not path.exists():
        raise SandboxError(
            f"no warehouse at {path}: build it first with `sandbox build` (or `make pipeline`)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if wait_s is None:
        wait_s = WAIT_S if (read_only or _step_state["depth"]) else 0.0
    deadline = time.monotonic() + wait_s
    while True:
        try:
            opened = _attach(path, read_only)
        except duckdb.Error as exc:
            message = str(exc).lower()
            if not any(word in message for word in _IN_USE):
                raise
            pid = _LOCK_PID.search(str(exc))
            holder = f"PID {pid.group(1)}" if pid else "another process"
            if "unique file handle" in message:
                # this process opened the file with duckdb.connect (a notebook, dbt): share
                # that database through DuckDB's own instance cache, as before attaching
                holder = "another connection of this process"
                try:
                    shared = duckdb.connect(str(path), read_only=read_only)
                except duckdb.Error:  # opened with other settings (dbt's), or held: wait
                    pass
                else:
                    with shared:
                        yield shared
                    return
        else:
            if opened is not None:
                break
            holder = "a read-only connection of this process"
        if time.monotonic() >= deadline:
            raise _busy(holder, path) from None
        time.sleep(0.05)
    cursor, entry = opened
    try:
        yield cursor
    finally:
        _release(str(path.resolve()), entry, cursor)


def ensure_writable() -> None:
    """Fail fast with :class:`WarehouseBusy` when another process holds the warehouse
    (the short wait absorbs a reader's brief query)."""
    with connect(wait_s=2.0):
        pass


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """True when ``schema.table`` exists in the warehouse."""
    sql = (
        "select count(*) from information_schema.tables where table_catalog = "
        "current_database() and table_schema || '.' || table_name = ?"
    )
    return bool(con.execute(sql, [name]).fetchone()[0])


def checksum(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """An order-independent fingerprint of a table's rows (md5 over the sorted rows)."""
    return con.execute(
        f"select coalesce(md5(string_agg(cast(t as varchar), chr(10) order by cast(t as varchar))), "
        f"'empty') from {table} as t"
    ).fetchone()[0]


def query_df(sql: str, params: list | None = None):
    """Run one read-only query and return a pandas DataFrame (for notebooks and the CLI)."""
    with connect(read_only=True) as con:
        return con.execute(sql, params or []).df()
