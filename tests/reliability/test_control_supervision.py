"""Drills: ``make airflow`` leaves no Airflow process behind, however it is stopped.

Each drill starts ``make airflow`` (a Makefile with the project's recipe) in its own session,
as a terminal does, and stops it one way: SIGTERM to the make process alone, Ctrl-C (SIGINT
to the whole group) while a task answers rows, ``kill -9`` of the group (the watchdog stops
the components), and ``kill -9`` of the group and the watchdog (the next start stops them).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.config import ROOT
from sandbox.control.supervise import members
from sandbox.warehouse import connect
from tests.control.conftest import airflow_home_fixture, migrated_home_fixture  # noqa: F401
from tests.control.test_airflow_scheduler import STARTUP_S, _wait_for, free_port

pytestmark = pytest.mark.slow

GONE_S = 300  # a generous bound for stopping four components on a busy machine
UNFINISHED = ("running", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "deferred")


def _make(tmp_path: Path, out: Path) -> subprocess.Popen:
    """``make airflow PORT=…`` in its own session (its PID is the group's)."""
    makefile = tmp_path / "Makefile"
    makefile.write_text(f"airflow:\n\t{sys.executable} -m sandbox.control.ui --scheduler "
                        "--port $(PORT)\n")  # fmt: skip
    with out.open("a") as sink:
        return subprocess.Popen(
            ["make", "-s", "-f", str(makefile), "airflow", f"PORT={free_port()}"], cwd=ROOT,
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _started(home: Path) -> tuple[set[int], float, dict]:
    """The sessions of the recorded components, their first start time, the whole record."""
    record = json.loads((home / "components.json").read_text())
    components = record["components"]
    return {pid for pid, _ in components.values()}, min(t for _, t in components.values()), record


def _wait_gone(sessions: set[int], since: float, also: tuple[int, ...] = ()) -> None:
    deadline = time.monotonic() + GONE_S
    while members(sessions, since) or any(_alive(pid) for pid in also):
        assert time.monotonic() < deadline, f"still running: {members(sessions, since)}"
        time.sleep(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


def _ready(proc: subprocess.Popen, out: Path, home: Path) -> tuple[set[int], float, dict]:
    _wait_for("(the shipped date)", out, proc, STARTUP_S)  # it was triggered, or it has a run
    return _started(home)


def test_sigterm_to_the_make_process_alone_stops_every_component(
    airflow_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "make.out"
    proc = _make(tmp_path, out)
    sessions, since, record = _ready(proc, out, airflow_home)
    assert members(sessions, since)
    os.kill(proc.pid, signal.SIGTERM)  # make passes it on (or dies: the supervisor sees that)
    proc.wait(timeout=GONE_S)
    _wait_gone(sessions, since, also=(record["supervisor"][0], record["watchdog"][0]))
    assert "every Airflow component has stopped." in out.read_text()
    assert not (airflow_home / "components.json").exists()


def test_ctrl_c_while_a_task_answers_rows_stops_in_order_and_leaves_nothing_running(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "2000")  # inference lasts minutes
    monkeypatch.setenv("SANDBOX_SENSOR_TIMEOUT_S", "900")
    monkeypatch.setenv("SANDBOX_SENSOR_POKE_S", "5")
    out = tmp_path / "make.out"
    proc = _make(tmp_path, out)
    sessions, since, _ = _ready(proc, out, airflow_home)
    db = airflow_home / "airflow.db"
    deadline = time.monotonic() + STARTUP_S
    while _state(db, "run_llm_inference") != "running":
        assert time.monotonic() < deadline and proc.poll() is None, out.read_text()[-3000:]
        time.sleep(2)
    time.sleep(10)  # some answers are in
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    proc.wait(timeout=GONE_S)
    _wait_gone(sessions, since)
    text = out.read_text()
    assert "stopping scheduler, dag-processor, triggerer, log-server, api-server" in text
    with sqlite3.connect(db) as con:
        left = con.execute(
            f"select task_id, state from task_instance where state in {UNFINISHED}"
        ).fetchall() + con.execute(
            "select dag_id, state from dag_run where state in ('running', 'queued')"
        ).fetchall()
        ai_run = con.execute(
            "select run_id from dag_run where dag_id = 'ai_recommendation_pipeline'"
        ).fetchone()[0]
    assert left == []  # nothing is left "running" in the metadata DB
    logs = airflow_home / "logs" / "dag_id=ai_recommendation_pipeline"
    log = "".join(p.read_text() for p in logs.glob("run_id=*/task_id=run_llm_inference/*.log"))
    assert "stopped" in log, log[-3000:]  # the stop line
    with connect(read_only=True) as con:
        status, requests = con.execute(
            "select status, llm_requests from ops.pipeline_runs where dag_run_id = ?", [ai_run]
        ).fetchone()
        ledger = con.execute(
            "select count(*) from decision.llm_calls where execution_date = '2026-11-01'"
        ).fetchone()[0]
    assert status == "failed" and requests == ledger > 0  # what was done is recorded


def _state(db: Path, task_id: str) -> str | None:
    with sqlite3.connect(db) as con:
        found = con.execute(
            "select state from task_instance where task_id = ?", [task_id]
        ).fetchone()
    return found[0] if found else None


def test_kill_9_of_the_group_leaves_nothing_and_the_next_start_cleans_up(
    airflow_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "make.out"
    proc = _make(tmp_path, out)
    sessions, since, _ = _ready(proc, out, airflow_home)
    os.killpg(proc.pid, signal.SIGKILL)  # no handler runs: the watchdog stops the rest
    proc.wait(timeout=60)
    _wait_gone(sessions, since)

    # the watchdog killed too: the components stay until the next make airflow stops them
    out = tmp_path / "make-2.out"
    proc = _make(tmp_path, out)
    sessions, since, record = _ready(proc, out, airflow_home)
    os.kill(record["watchdog"][0], signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(5)
    assert members(sessions, since)  # orphans, as before
    out = tmp_path / "make-3.out"
    again = _make(tmp_path, out)
    try:
        _wait_for("left by an earlier make airflow", out, again, STARTUP_S)
        _wait_gone(sessions, since)
        new_sessions, new_since, _ = _ready(again, out, airflow_home)
    finally:
        os.killpg(again.pid, signal.SIGINT)
        again.wait(timeout=GONE_S)
    _wait_gone(new_sessions, new_since)
