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
from pathlib import Path

import duckdb

from sandbox.config import SandboxError, warehouse_path


class WarehouseBusy(SandboxError):
    """Another process holds the DuckDB file's write lock."""


_LOCK_PID = re.compile(r"PID (\d+)")

WAIT_S = 30.0
"""How long a connection waits for its turn inside a step (or to read) before giving up."""

_step_guard = threading.Lock()
_step_state: dict = {"depth": 0, "fd": None}


def _busy(holder: str, path: Path) -> WarehouseBusy:
    return WarehouseBusy(
        f"warehouse is in use by {holder} ({path}): wait for that step to finish, or stop "
        "it (a notebook kernel holding a connection counts), then try again"
    )


@contextmanager
def step_lock(step: str, path: Path | None = None) -> Iterator[None]:
    """Hold the warehouse for one whole step (a build, an inference run, a pipeline run).

    An advisory lock on ``<warehouse>.lock``: a second writer process gets :class:`WarehouseBusy`
    at once; re-entrant within a process, released by the OS when the holder dies.
    """
    path = path or warehouse_path()
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


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``: connections of one process share one database (DuckDB's cache)."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.ConnectionException:
        if not read_only:
            raise
        # this process has the file open for writing (the CLI, a notebook): read through that
        return duckdb.connect(str(path))


@contextmanager
def connect(
    read_only: bool = False, path: Path | None = None, wait_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for one short piece of work and close it afterwards.

    In a step (:func:`step_lock`) and for reads a busy file is waited for up to ``wait_s``;
    otherwise a writer gets :class:`WarehouseBusy` at once, naming the holder's PID.
    """
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
            con = _open(path, read_only)
            break
        except (duckdb.ConnectionException, duckdb.ResourceInUseException):
            # open in this process with other settings (read-only, or dbt's)
            holder = "another connection of this process"
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            pid = _LOCK_PID.search(str(exc))
            holder = f"PID {pid.group(1)}" if pid else "another process"
        if time.monotonic() >= deadline:
            raise _busy(holder, path) from None
        time.sleep(0.05)
    try:
        yield con
    finally:
        con.close()


def ensure_writable(wait_s: float = 2.0) -> None:
    """Fail fast with :class:`WarehouseBusy` when another process holds the warehouse (the
    short wait absorbs a reader's brief query)."""
    with connect(wait_s=wait_s):
        pass


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """True when ``schema.table`` exists in the warehouse."""
    schema, table = name.split(".")
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_catalog = current_database() and table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


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
