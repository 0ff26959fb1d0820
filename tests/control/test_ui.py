"""`python -m sandbox.control.ui` (make airflow-ui): the parts that need no running server."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.config import ROOT, SandboxError
from sandbox.control import supervise, ui
from tests.control.conftest import airflow_home_fixture, migrated_home_fixture  # noqa: F401


def test_a_busy_port_is_a_clear_error(airflow_home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sandbox.control.ui", "--port", str(port)],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_the_login_password_is_read_from_airflows_generated_file(airflow_home: Path) -> None:
    assert ui.password_file() == airflow_home / "simple_auth_manager_passwords.json.generated"
    assert ui.read_password() is None
    ui.password_file().write_text(json.dumps({"admin": "s3cret"}) + "\n")
    assert ui.read_password() == "s3cret"


def test_make_airflow_points_every_component_at_one_port_and_local_executor(
    airflow_home: Path, monkeypatch
) -> None:
    monkeypatch.delenv("SANDBOX_SENSOR_POKE_S", raising=False)
    monkeypatch.setenv("SANDBOX_RETRY_DELAY_S", "7")
    env = ui.scheduler_environ(8781)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8781/execution/"
    # one log server, on 127.0.0.1, for task and trigger logs (Airflow's own binds everywhere)
    assert (env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
            env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]) == ("8782", "8782")  # fmt: skip
    commands = ui.commands(8781, scheduler=True)
    assert "--skip-serve-logs" in commands["scheduler"] and "--skip-serve-logs" in commands["triggerer"]
    for name in ("api-server", "log-server"):
        assert commands[name][commands[name].index("--host") + 1] == "127.0.0.1"
    assert list(ui.commands(8781, scheduler=False)) == ["api-server"]
    assert env["SANDBOX_SENSOR_POKE_S"] == "10"  # a learner watches
    assert "SANDBOX_RETRY_DELAY_S" not in env  # what the user set wins
    ui_only = ui.ready_message("http://127.0.0.1:8781", scheduler=False)
    assert "No scheduler runs here" in ui_only and "badges are red" in ui_only
    full = ui.ready_message("http://127.0.0.1:8781", scheduler=True)
    assert "--trigger 2026-11-01 --port 8781" in full


def test_stopping_reaches_every_process_a_component_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import time

    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pids}; trap '' TERM; sleep 300"  # one ignores SIGTERM
    procs = {"component": subprocess.Popen(["sh", "-c", script], start_new_session=True)}
    while not (pids.exists() and pids.read_text().strip()):
        time.sleep(0.05)
    child = int(pids.read_text())

    monkeypatch.setattr(supervise, "STOP_TIMEOUT_S", 2)
    supervise.stop_group(procs["component"].pid)

    assert procs["component"].poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the grandchild went too, although it was not waited for


def test_every_airflow_process_waits_for_a_busy_metadata_db_in_wal_mode(
    airflow_home: Path,
) -> None:
    """A scheduler writing while the API server writes must not fail the API call (the 500
    "Database error" a busy machine produced with SQLite's 5 s default)."""
    code = (
        "from sandbox.control.airflow_env import configure, migrate_home; "
        "migrate_home(configure()); from airflow import settings; import asyncio, sqlalchemy as sa\n"
        "with settings.engine.connect() as c:\n"
        "    print(c.exec_driver_sql('PRAGMA busy_timeout').scalar(),"
        " c.exec_driver_sql('PRAGMA journal_mode').scalar())\n"
        "async def main():\n"
        "    async with settings.async_engine.connect() as c:\n"
        "        print((await c.exec_driver_sql('PRAGMA busy_timeout')).scalar())\n"
        "    await settings.async_engine.dispose()\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["20000", "wal", "20000"]


class _Airflow(http.server.BaseHTTPRequestHandler):
    """Answers POSTs from a script: (status, body) pairs, one per request."""

    script: list[tuple[int, dict]] = []
    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        length = int(self.headers["Content-Length"])
        type(self).seen.append(json.loads(self.rfile.read(length)))
        status, body = type(self).script.pop(0)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(name="scripted_airflow")
def scripted_airflow_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(ui, "API_RETRY_DELAYS_S", (0.01, 0.01, 0.01))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Airflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Airflow.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


DB_ERROR = {"detail": {"reason": "Database error", "statement": "hidden", "orig_error": "hidden"}}


def test_a_busy_metadata_db_is_retried_and_the_run_is_created_once(scripted_airflow: str) -> None:
    _Airflow.script = [(500, DB_ERROR), (503, {"detail": "busy"}), (200, {"dag_run_id": "r1"})]
    assert ui.api(scripted_airflow, "/api/v2/dags/d/dagRuns", "t", {"n": 1}) == {"dag_run_id": "r1"}
    assert _Airflow.seen == [{"n": 1}] * 3 and _Airflow.script == []


def test_other_errors_and_a_db_that_stays_busy_fail_with_airflows_answer(
    scripted_airflow: str,
) -> None:
    conflict = {"detail": {"reason": "Unique constraint violation"}}
    _Airflow.script = [(409, conflict)]
    with pytest.raises(SandboxError, match="Airflow answered 409 .*Unique constraint"):
        ui.api(scripted_airflow, "/api/v2/dags/d/dagRuns", "t", {})
    assert len(_Airflow.seen) == 1  # not retried: a conflict stays a conflict
    _Airflow.seen = []
    _Airflow.script = [(500, DB_ERROR)] * 4
    with pytest.raises(SandboxError, match="Airflow answered 500 .*Database error"):
        ui.api(scripted_airflow, "/api/v2/dags/d/dagRuns", "t", {})
    assert len(_Airflow.seen) == 4  # the first try and three retries
    _Airflow.seen = []
    _Airflow.script = [(500, {"detail": "Internal Server Error"})]
    with pytest.raises(SandboxError, match="Airflow answered 500"):
        ui.api(scripted_airflow, "/api/v2/dags/d/dagRuns", "t", {})
    assert len(_Airflow.seen) == 1


def test_the_token_comes_from_auth_token_and_a_silent_airflow_is_a_clear_error(
    airflow_home: Path, scripted_airflow: str
) -> None:
    ui.password_file().write_text(json.dumps({"admin": "s3cret"}))
    _Airflow.script = [(201, {"access_token": "jwt"})]
    assert ui.api_token(scripted_airflow) == "jwt"
    assert _Airflow.seen == [{"username": "admin", "password": "s3cret"}]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(SandboxError, match="does not answer .*start it with make airflow"):
        ui.api_token(url)
