"""``sandbox.warehouse.connect``: one attachment per file and process, released when unused.

Every connection attaches the warehouse file to one in-memory DuckDB database that the
process keeps, and the last one to close detaches it, which releases DuckDB's file lock
exactly as closing a database did. These tests pin what that must keep true: the lock is
gone once no connection is open (another process can write), connections of one process
share the file instead of failing, a connection held elsewhere in this process makes a
writer wait and then fail with a message that says so, and a forked child can open it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from sandbox import warehouse
from sandbox.warehouse import WarehouseBusy, connect


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    file = tmp_path / "sandbox.duckdb"
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(file))
    with connect() as con:
        con.execute("create table t as select 1 as x")
    return file


def _other_process_writes(file: Path) -> subprocess.CompletedProcess:
    code = f"import duckdb; c = duckdb.connect({str(file)!r}); c.execute('insert into t values (2)')"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_closing_the_last_connection_releases_the_file(path: Path) -> None:
    with connect() as con:
        assert con.execute("select count(*) from t").fetchone() == (1,)
    assert warehouse._attached == {}
    written = _other_process_writes(path)
    assert written.returncode == 0, written.stderr
    with connect(read_only=True) as con:
        assert con.execute("select sum(x) from t").fetchone() == (3,)


def test_an_open_connection_holds_the_file_against_other_processes(path: Path) -> None:
    with connect():
        refused = _other_process_writes(path)
    assert refused.returncode != 0 and "lock" in refused.stderr.lower()


def test_connections_of_one_process_share_the_file(path: Path) -> None:
    with connect() as outer, connect(read_only=True) as inner:
        outer.execute("insert into t values (5)")
        assert inner.execute("select sum(x) from t").fetchone() == (6,)
        assert len(warehouse._attached) == 1
    assert warehouse._attached == {}


def test_threads_connect_at_the_same_time(path: Path) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(20):
                with connect() as con:
                    con.execute("insert into t values (?)", [n])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with connect(read_only=True) as con:
        assert con.execute("select count(*) from t").fetchone() == (81,)
    assert warehouse._attached == {}


def test_a_writer_waits_for_a_read_only_connection_of_its_own_process(path: Path) -> None:
    done = threading.Event()

    def reader() -> None:
        with connect(read_only=True):
            done.wait(5)

    thread = threading.Thread(target=reader)
    thread.start()
    while not warehouse._attached:
        time.sleep(0.01)
    with pytest.raises(WarehouseBusy, match="a read-only connection of this process"):
        with connect(wait_s=0.2):
            pass
    done.set()
    thread.join()
    with connect(wait_s=5) as con:  # the reader is gone: the writer gets the file
        con.execute("insert into t values (1)")


def test_a_raw_duckdb_connection_in_this_process_is_shared(path: Path) -> None:
    raw = duckdb.connect(str(path))  # as a notebook might hold one
    try:
        with connect(wait_s=0.2) as con:
            con.execute("insert into t values (4)")
        assert raw.execute("select sum(x) from t").fetchone() == (5,)
    finally:
        raw.close()
    with connect() as con:
        assert con.execute("select count(*) from t").fetchone() == (2,)


def test_a_raw_connection_with_other_settings_makes_a_clear_busy_error(path: Path) -> None:
    raw = duckdb.connect(str(path), config={"threads": 1})  # as dbt opens it
    try:
        with pytest.raises(WarehouseBusy, match="another connection of this process"):
            with connect(read_only=True, wait_s=0.2):
                pass
    finally:
        raw.close()


def test_two_files_with_the_same_name_are_open_at_once(path: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "sandbox.duckdb"
    with connect(path=other) as con:
        con.execute("create table t as select 10 as x")
    with connect() as first, connect(path=other) as second:
        assert first.execute("select sum(x) from t").fetchone() == (1,)
        assert second.execute("select sum(x) from t").fetchone() == (10,)
        # the first keeps the file's own name, which dbt's compiled SQL qualifies tables with
        assert first.execute("select current_database()").fetchone() == ("sandbox",)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # the fork is the point
def test_a_forked_child_opens_the_warehouse_itself(path: Path) -> None:
    with connect() as con:
        con.execute("select 1")
    assert warehouse._host["con"] is not None  # the parent's database lives on when it forks
    pid = os.fork()
    if pid == 0:  # child: must start its own database, not touch the parent's
        code = 1
        try:
            with connect(wait_s=5) as child:
                code = 0 if child.execute("select count(*) from t").fetchone() == (1,) else 3
        except BaseException:  # noqa: BLE001 - the exit code reports it
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
