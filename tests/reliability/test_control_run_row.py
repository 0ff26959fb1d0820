"""Drills: the run's ``ops.pipeline_runs`` row is always written and always whole.

A parallel task holding the warehouse (``check_drift`` writing its verdict) delays the row
instead of losing it, and a warehouse held past the bound is a clear failure; an attempt
SIGKILLed in the middle of inference still counts in the row the DAG run ends with.
"""

# ruff: noqa: F811 (the fixtures imported from tests.control.conftest are test arguments)

from __future__ import annotations

import signal
import subprocess
import sys
import time
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.config import ROOT
from sandbox.control import runs, tasks
from tests.control.conftest import airflow_home_session_fixture  # noqa: F401
from tests.decision.conftest import DAY, create_mart
from tests.reliability.harness import PausedChild, rows, scalar

HOLD = """
import sys, time
from sandbox.warehouse import connect
with connect() as con:
    con.execute("create table if not exists ops_hold as select 1 as x")
    print("held", flush=True)
    time.sleep(float(sys.argv[1]))
"""


def _hold(seconds: float) -> subprocess.Popen:
    """Another process (as check_drift does) holds the warehouse for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(seconds)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def _context(run_id: str, started: datetime | None = None) -> dict:
    ti = types.SimpleNamespace(task_id="write_results", xcom_pull=lambda **kw: None)
    return {"ds": str(DAY), "run_id": run_id, "ti": ti, "exception": None,
            "dag_run": types.SimpleNamespace(start_date=started)}  # fmt: skip


def test_a_held_warehouse_delays_the_row_instead_of_losing_it(airflow_home_session) -> None:
    holder = _hold(4)
    try:
        assert runs.record_pipeline_run(_context("r1"), succeeded=True, written=3) == "success"
    finally:
        holder.wait(timeout=60)
    assert rows("select dag_run_id, status, rows_written from ops.pipeline_runs") == [
        ("r1", "success", 3)
    ]


def test_a_warehouse_held_past_the_bound_fails_with_a_clear_message(
    airflow_home_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "WAIT_S", 1.0)
    holder = _hold(30)
    try:
        with pytest.raises(runs.RunNotRecorded, match="was not written: warehouse is in use by"):
            runs.record_pipeline_run(_context("r1"), succeeded=True, written=3)
    finally:
        holder.kill()
        holder.wait()


def test_an_attempt_killed_mid_inference_still_counts_in_the_row(
    airflow_home_session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_mart(40)
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "40")
    started = datetime.now(UTC)  # the DAG run starts
    first = PausedChild("commit-rows:13", ("infer", "--date", str(DAY), "--workers", "4",
                                           "--no-progress"), tmp_path / "child").start()  # fmt: skip
    first.wait_paused()
    time.sleep(0.5)
    assert first.kill() == -signal.SIGKILL  # attempt 1 dies mid-inference
    second = tasks.run_llm_inference(str(DAY))  # attempt 2 resumes
    assert tasks.write_results(str(DAY)) == 40
    runs.record_pipeline_run(_context("run-1", started), succeeded=True, written=40)
    requests, cost, done = rows(
        "select llm_requests, cost_usd, rows_done from ops.pipeline_runs where dag_run_id = 'run-1'"
    )[0]
    ledger = scalar("select count(*) from decision.llm_calls")
    assert requests == ledger > second["requests"]  # both attempts, not the last one's XCom
    assert cost == pytest.approx(scalar("select sum(cost_usd) from decision.llm_calls"))
    assert done == 40
