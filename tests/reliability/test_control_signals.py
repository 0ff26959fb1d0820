"""Drill: SIGTERM or Ctrl-C in the middle of ``sandbox run``'s LLM requests.

The run must stop sending, keep what was answered, mark its Airflow runs failed, say in one
line what was kept, exit 128 + the signal number, and leave a state a re-run resumes from
without paying again for the rows already answered.
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
from sandbox.decision.prompt import opaque_user_id
from sandbox.warehouse import connect
from tests.control.conftest import (  # noqa: F401  (fixtures)
    airflow_home_fixture,
    migrated_home_fixture,
    sandbox_run,
    task_states,
)

pytestmark = pytest.mark.slow

DAY = "2026-11-01"
WORKERS = 10  # the decision plane's default concurrency
STARTED = 30  # messages answered before the signal: the drill hits a run in full flight


def _messages(log: Path) -> list[dict]:
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in lines if e.get("path") == "/v1/messages"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_sandbox_run_cleanly_and_a_rerun_resumes(
    signum: int, airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log))
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "300")  # a run long enough to interrupt
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "run", "--date", DAY], cwd=ROOT, env=os.environ,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while len(_messages(log)) < STARTED:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "inference never started"
        time.sleep(0.2)
    proc.send_signal(signum)
    at_signal = len(_messages(log))
    out, err = proc.communicate(timeout=300)

    assert proc.returncode == 128 + signum, out + err
    name = signal.Signals(signum).name
    assert err.startswith(f"sandbox run: stopped by {name} during {DAY}: no new LLM request")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err  # one line
    sent = _messages(log)
    # after the signal only the rows in flight finish (each may still ask the escalation
    # model once); nothing else is submitted
    assert len(sent) - at_signal <= 2 * WORKERS, (at_signal, len(sent))
    with connect(read_only=True) as con:
        kept = con.execute("select count(*) from decision.recommendations_staging").fetchone()[0]
        runs = con.execute("select status from ops.pipeline_runs").fetchall()
    assert f"{kept} answers for {DAY} kept" in err and 0 < kept < 500
    assert runs == [("failed",)]
    ai = task_states(airflow_home, "ai_recommendation_pipeline")
    assert ai["run_llm_inference"] == "failed" and ai["write_results"] == "upstream_failed"
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        states = {s for (s,) in db.execute("select state from dag_run")}
    assert "running" not in states  # the UI shows no run left running forever

    with connect(read_only=True) as con:
        staged = {opaque_user_id(u) for (u,) in con.execute(
            "select user_id from decision.recommendations_staging"
        ).fetchall()}  # fmt: skip
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "0")
    rerun = sandbox_run("--date", DAY)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    with connect(read_only=True) as con:
        assert con.execute("select count(*) from marts.user_recommendations").fetchone()[0] == 500
    asked_again = {e["user"] for e in _messages(log)[len(sent) :]}
    assert asked_again and not asked_again & staged  # answered rows are not paid for twice
