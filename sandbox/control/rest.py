"""Airflow's REST API on this machine: the generated admin password, a token, one call.
``make airflow`` triggers runs (``ui``) and closes unfinished ones (``supervise``) with it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from sandbox.config import SandboxError, airflow_home

USER = "admin"
API_RETRY_DELAYS_S = (1, 2, 4, 8, 16)  # a busy metadata DB: see api()


def password_file() -> Path:
    """Where SimpleAuthManager writes the generated passwords (JSON: user -> password)."""
    return airflow_home() / "simple_auth_manager_passwords.json.generated"


def read_password() -> str | None:
    """The generated password of ``admin``, once the server has written it."""
    try:
        return json.loads(password_file().read_text() or "{}").get(USER)
    except (OSError, ValueError):
        return None


def api_token(url: str) -> str:
    """A JWT for the REST API from SimpleAuthManager's ``/auth/token``."""
    password = read_password()
    if password is None:
        raise SandboxError(f"no generated password in {password_file()}: is Airflow running?")
    body = json.dumps({"username": USER, "password": password}).encode()
    request = urllib.request.Request(
        f"{url}/auth/token", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]
    except OSError as exc:
        raise SandboxError(f"Airflow at {url} does not answer ({exc}): start it with make airflow") from exc


def api(url: str, path: str, token: str, body: dict | None = None, method: str | None = None) -> dict:
    """One authenticated REST call (GET, or POST with a JSON ``body``); the decoded answer.
    A 500 "Database error" (SQLite busy, rolled back) or a 503 is retried after 1 to 16 s."""
    request = urllib.request.Request(
        f"{url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 "Accept": "application/json"}, method=method,
    )  # fmt: skip
    delays = iter(API_RETRY_DELAYS_S)
    while True:
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            busy = exc.code == 503 or (exc.code == 500 and '"Database error"' in detail)
            if not busy or (delay := next(delays, None)) is None:
                raise SandboxError(f"Airflow answered {exc.code} to {path}: {detail}") from None
        time.sleep(delay)
