"""`python -m sandbox.control.ui` (make airflow-ui): the parts that need no running server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

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
