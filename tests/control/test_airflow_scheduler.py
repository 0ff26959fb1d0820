"""Airflow's real components (``make airflow``) and its REST API over recorded runs.

The scheduler test starts the scheduler (LocalExecutor), dag-processor, triggerer and
api-server on 127.0.0.1, triggers both DAGs for a date through the REST API, waits for them
to succeed, reads a task's log through the API, stops everything with SIGINT (Ctrl-C) and
checks that no process of that Airflow is left. The UI tests read the log of a task that
``sandbox run`` recorded with ``dag.test()``: through the same API, and in Airflow's own
page in a real browser (headless Chromium; skipped, with the reason, where it is missing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.config import ROOT
from sandbox.control import ui
from sandbox.warehouse import connect
from tests.browser_fixtures import browser_fixture, shots_fixture  # noqa: F401  (fixtures)
from tests.control.conftest import (  # noqa: F401  (fixtures)
    airflow_home_fixture,
    migrated_home_fixture,
    sandbox_run,
)

pytestmark = pytest.mark.slow

DAY = "2026-11-01"
STARTUP_S = 600  # generous: four Airflow processes on a busy two-core machine
RUNS_S = 1200


def free_port() -> int:
    """A port on 127.0.0.1 that is free, with the next one free too (the log server's)."""
    import socket

    while True:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


def _processes_of(home: Path) -> list[int]:
    """PIDs of every process whose environment points at this Airflow home."""
    needle = f"SANDBOX_AIRFLOW_HOME={home}".encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
        except OSError:
            continue
    return [pid for pid in pids if pid != os.getpid()]


def _wait_for(text: str, log: Path, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {text!r} in time:\n{log.read_text()}"
        time.sleep(1)


@contextlib.contextmanager
def airflow(home: Path, out: Path, port: int, *, scheduler: bool) -> Iterator[dict]:
    """``python -m sandbox.control.ui [--scheduler] --port P``, stopped with SIGINT after."""
    args = [sys.executable, "-m", "sandbox.control.ui", "--port", str(port)]
    with out.open("w") as sink:
        proc = subprocess.Popen(
            args + (["--scheduler"] if scheduler else []), cwd=ROOT, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for("Airflow UI:", out, proc, STARTUP_S)
        yield {"proc": proc, "out": out, "url": f"http://127.0.0.1:{port}", "home": home}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise


def _log_events(url: str, dag_id: str, run_id: str, task_id: str, attempt: int) -> list[str]:
    """A task attempt's log lines, as the UI gets them from the REST API."""
    token = ui.api_token(url)
    path = (
        f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        f"/taskInstances/{task_id}/logs/{attempt}"
    )
    return [str(line.get("event")) for line in ui.api(url, path, token)["content"]]


def _diagnose(home: Path) -> str:
    """Every task's state and the error lines of every task log (for a failed assertion)."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "select run_id, task_id, state, try_number from task_instance order by start_date"
        ).fetchall()
    errors = [
        line[:400]
        for log in sorted((home / "logs").glob("dag_id=*/run_id=*/task_id=*/attempt=*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if '"level":"error"' in line or "[error" in line
    ]
    return "\n".join(map(str, rows)) + "\n" + "\n".join(errors[-20:])


def _run_states(home: Path, run_ids: list[str]) -> dict[str, str]:
    with sqlite3.connect(home / "airflow.db") as db:
        marks = ",".join("?" * len(run_ids))
        return dict(
            db.execute(f"select run_id, state from dag_run where run_id in ({marks})", run_ids)
        )


def test_the_real_scheduler_runs_both_dags_for_a_date_and_stops_cleanly(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sensor waits for a dbt run that really runs meanwhile: give it time (the fixture's
    # 3 s suit `sandbox run`, where dbt has finished before the sensor starts)
    monkeypatch.setenv("SANDBOX_SENSOR_TIMEOUT_S", "900")
    monkeypatch.setenv("SANDBOX_SENSOR_POKE_S", "5")
    with airflow(airflow_home, tmp_path / "airflow.out", free_port(), scheduler=True) as running:
        try:
            _scheduler_drill(running)
        except BaseException:
            _print_component_logs(airflow_home)  # pytest shows it with the failure
            raise


def _print_component_logs(home: Path, lines: int = 60) -> None:
    for log in sorted((home / "logs" / "components").glob("*.log")):
        print(f"--- last {lines} lines of {log.name}")
        print("\n".join(log.read_text(errors="replace").splitlines()[-lines:]))


@contextlib.contextmanager
def _write_lock_held(db: Path, seconds: float) -> Iterator[None]:
    """Another writer holds the metadata DB's write lock for ``seconds`` from entry."""
    import threading

    held = threading.Event()

    def hold() -> None:
        with contextlib.closing(sqlite3.connect(db, timeout=60, isolation_level=None)) as con:
            con.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(seconds)
            con.execute("COMMIT")

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(60), "could not take the write lock"
    try:
        yield
    finally:
        thread.join()


def _scheduler_drill(running: dict) -> None:
    home, url = running["home"], running["url"]
    assert "DAGs are unpaused" in running["out"].read_text()

    # the first view: make airflow triggered the shipped date itself, and it goes green
    _wait_for("triggered ai_recommendation_pipeline for 2026-11-01", running["out"],
              running["proc"], STARTUP_S)  # fmt: skip
    with sqlite3.connect(home / "airflow.db") as db:
        # the triggered runs: from 02:00 to 04:24 UTC the scheduler also starts the day's own
        # run (Airflow runs a cron tick less than a tenth of the interval old, see docs)
        run_ids = [db.execute("select run_id from dag_run where dag_id = ? and run_type = 'manual'",
                              [d]).fetchone()[0] for d in ui.DAG_IDS]  # fmt: skip
    # A busy metadata DB: another writer holds it for 10 s, twice SQLite's default wait; a
    # REST call waits its turn (busy timeout), and a 500 "Database error" is retried
    with _write_lock_held(home / "airflow.db", 10):
        token = ui.api_token(url)
        shipped = "logical_date_gte=2026-11-01T02:00:00Z&logical_date_lte=2026-11-01T02:00:00Z"
        path = f"/api/v2/dags/dbt_production/dagRuns?{shipped}"
        assert ui.api(url, path, token)["total_entries"] == 1
    assert_loopback_only(home, running["proc"].pid)

    deadline = time.monotonic() + RUNS_S
    while set(_run_states(home, run_ids).values()) - {"success", "failed"}:
        assert time.monotonic() < deadline, _run_states(home, run_ids)
        time.sleep(5)
    states = [_run_states(home, run_ids)[r] for r in run_ids]
    assert states == ["success", "success"], _diagnose(home)
    ai_run = run_ids[1]
    with connect(read_only=True) as con:
        published = con.execute(
            "select count(*) from marts.user_recommendations where execution_date = ?", [DAY]
        ).fetchone()[0]
        [(status,)] = con.execute(
            "select status from ops.pipeline_runs where dag_run_id = ?", [ai_run]
        ).fetchall()
    assert published == 500 and status == "success"
    with sqlite3.connect(home / "airflow.db") as db:
        [(hostname,)] = db.execute(
            "select hostname from task_instance where run_id = ? and task_id = 'run_llm_inference'",
            [ai_run],
        ).fetchall()
    assert hostname  # a LocalExecutor worker ran it, not dag.test()
    events = _log_events(url, "ai_recommendation_pipeline", ai_run, "run_llm_inference", 1)
    # readable: no line per HTTP request (DEBUG), one summary line at the end
    assert not any("HTTP Request" in e for e in events), events[:20]
    assert any(e.startswith("summary: run_llm_inference 2026-11-01 done: status ok, rows done 500")
               for e in events), events[-10:]  # fmt: skip
    for task_id in ("dbt_run",):
        dbt_log = list((home / "logs").glob(
            f"dag_id=dbt_production/run_id={run_ids[0]}/task_id={task_id}/*.log"
        ))  # the triggered run's (the day's own run, if the scheduler started one, fails its gate)
        assert dbt_log, f"no {task_id} log for {run_ids[0]}"
        text = "".join(p.read_text() for p in dbt_log)
        assert '"level":"error"' not in text.replace(" ", ""), text[-3000:]

    proc = running["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 0
    assert "every Airflow component has stopped." in running["out"].read_text()
    assert _processes_of(home) == []  # no scheduler, worker, triggerer or server left
    assert not (home / "components.json").exists()


def assert_loopback_only(home: Path, supervisor: int) -> None:
    """Every socket that a started process listens on is bound to 127.0.0.1."""
    import json

    import psutil

    from sandbox.control.supervise import members

    recorded = json.loads((home / "components.json").read_text())["components"]
    pids = set(members({pid for pid, _ in recorded.values()})) | {supervisor}
    listening = [
        (c.pid, c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections("inet")
        if c.pid in pids and c.status == psutil.CONN_LISTEN
    ]
    assert len(listening) >= 2, listening  # the api-server and the log server at least
    assert {ip for _, ip, _ in listening} == {"127.0.0.1"}, listening


@pytest.fixture(scope="module")
def recorded_ui(migrated_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A date ``sandbox run`` recorded, and Airflow's UI alone over it (no scheduler): shared
    by the REST API test and the browser test, as a learner runs ``make airflow-ui``."""
    root = tmp_path_factory.mktemp("recorded_ui")
    home = root / "airflow"
    shutil.copytree(migrated_home, home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SANDBOX_AIRFLOW_HOME", str(home))
        mp.setenv("SANDBOX_WAREHOUSE", str(root / "warehouse" / "sandbox.duckdb"))
        result = sandbox_run("--date", DAY)
        assert result.returncode == 0, result.stdout + result.stderr
        with sqlite3.connect(home / "airflow.db") as db:
            runs = dict(db.execute("select dag_id, run_id from dag_run").fetchall())
        with airflow(home, root / "ui.out", free_port(), scheduler=False) as running:
            yield {**running, "runs": runs}


def test_the_ui_serves_the_log_of_a_task_sandbox_run_recorded(recorded_ui: dict) -> None:
    url, runs = recorded_ui["url"], recorded_ui["runs"]
    ai = _log_events(
        url, "ai_recommendation_pipeline", runs["ai_recommendation_pipeline"],
        "run_llm_inference", 1,
    )  # fmt: skip
    dbt = _log_events(url, "dbt_production", runs["dbt_production"], "dbt_run", 1)
    token = ui.api_token(url)
    paused = [ui.api(url, f"/api/v2/dags/{d}", token)["is_paused"] for d in ui.DAG_IDS]
    assert "No scheduler runs here" in recorded_ui["out"].read_text()
    # the task's own output: its summary line, and no line per HTTP request (DEBUG)
    assert any(e.startswith("summary: run_llm_inference 2026-11-01 done") for e in ai), ai[-20:]
    assert not any("HTTP Request" in e or "api.anthropic.com" in e for e in ai)
    assert any("dbt" in e.lower() for e in dbt)
    assert not any("Could not read served logs" in e for e in ai + dbt)
    assert paused == [True, True]  # nothing would run a triggered run


@pytest.mark.browser
def test_the_ui_shows_that_task_log_in_a_real_browser(
    recorded_ui: dict, browser, shots: Path
) -> None:
    """The page a learner opens: the recorded task's own summary line in Airflow's log
    viewer (headless Chromium, see ``tests/browser_fixtures.py``)."""
    url = recorded_ui["url"]
    dag_id, task_id = "ai_recommendation_pipeline", "run_llm_inference"
    quoted = urllib.parse.quote(recorded_ui["runs"][dag_id], safe="")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{url}/")
    page.locator("input[name='username']").fill(ui.USER)
    page.locator("input[name='password']").fill(ui.read_password())
    page.locator("button[type='submit']").click()
    page.wait_for_load_state("networkidle")
    page.goto(f"{url}/dags/{dag_id}/runs/{quoted}/tasks/{task_id}")
    page.wait_for_function(  # the log viewer shows the task's summary line
        "() => document.body.innerText.includes('summary: run_llm_inference')",
        timeout=120_000, polling=500,
    )
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / "airflow-task-log.png"))
    body = page.inner_text("body")
    assert "summary: run_llm_inference" in body  # the task's own lines
    assert "HTTP Request" not in body and "api.anthropic.com" not in body  # DEBUG, offline
    assert "Could not read served logs" not in body
    assert task_id in body
    page.close()
