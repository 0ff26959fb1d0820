"""`python -m sandbox.control.ui` (make airflow-ui): the parts that need no running server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.config import ROOT
from sandbox.control import ui
from tests.control_fixtures import airflow_home_fixture, migrated_home_fixture  # noqa: F401


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
    assert (env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
            env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]) == ("8782", "8783")  # fmt: skip
    assert env["SANDBOX_SENSOR_POKE_S"] == "10"  # a learner watches
    assert "SANDBOX_RETRY_DELAY_S" not in env  # what the user set wins
    ui_only = ui.ready_message("http://127.0.0.1:8781", airflow_home, scheduler=False)
    assert "No scheduler runs here" in ui_only and "badges are red" in ui_only
    full = ui.ready_message("http://127.0.0.1:8781", airflow_home, scheduler=True)
    assert "--trigger 2026-11-01 --port 8781" in full


def test_stopping_reaches_every_process_a_component_started(tmp_path: Path) -> None:
    import os
    import time

    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pids}; trap '' TERM; sleep 300"  # one ignores SIGTERM
    procs = {"component": subprocess.Popen(["sh", "-c", script], start_new_session=True)}
    while not (pids.exists() and pids.read_text().strip()):
        time.sleep(0.05)
    child = int(pids.read_text())

    ui.stop_all(procs, timeout_s=2)

    assert procs["component"].poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the grandchild went too, although it was not waited for
