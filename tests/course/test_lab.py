"""JupyterLab's own server starts on localhost, serves the course notebooks with this project's
settings (no news pop-up, widget state saved), and ``make lab`` passes ``LAB_ARGS`` through."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sandbox.config import ROOT

SETTINGS_DIR = ROOT / "notebooks" / ".jupyter" / "lab" / "settings"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (localhost)
        return response.status, response.read()


def test_make_lab_passes_lab_args_and_the_project_settings() -> None:
    dry = subprocess.run(
        ["make", "-n", "lab", "LAB_ARGS=--port=8891 --no-browser --IdentityProvider.token=t0k"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(
        x for x in dry.splitlines() if "jupyter lab" in x or "jupyter lab" in x.replace("\\", "")
    )
    command = dry[dry.index(line) :]
    for arg in (
        "--port=8891",
        "--no-browser",
        "--IdentityProvider.token=t0k",
        "--ServerApp.ip=127.0.0.1",
    ):
        assert arg in command
    assert f"--LabApp.app_settings_dir={SETTINGS_DIR}" in command


def test_the_overrides_turn_the_news_off_and_save_widget_state() -> None:
    overrides = json.loads((SETTINGS_DIR / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert overrides["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True


@pytest.mark.slow
def test_jupyterlab_serves_the_notebooks_with_the_project_settings(tmp_path: Path) -> None:
    port, token = _free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root",
         f"--ServerApp.root_dir={ROOT / 'notebooks'}", f"--LabApp.app_settings_dir={SETTINGS_DIR}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "lab.log").open("w"),
        env={**__import__("os").environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
             "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
             "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings")},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = _get(f"{base}/api/contents", token)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-2000:]
                    )
                time.sleep(0.5)
        names = {item["name"] for item in json.loads(body)["content"]}
        expected = {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
        assert status == 200 and expected and expected <= names
        status, page = _get(f"{base}/lab", token)
        assert status == 200 and b"JupyterLab" in page
        status, body = _get(f"{base}/api/contents/00_start_here.ipynb", token)
        assert json.loads(body)["type"] == "notebook"
        # the overrides become the defaults the browser gets: no news fetch, widget state saved
        _, body = _get(
            f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification", token
        )
        assert json.loads(body)["schema"]["properties"]["fetchNews"]["default"] == "false"
        _, body = _get(f"{base}/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin", token)
        assert json.loads(body)["schema"]["properties"]["saveState"]["default"] is True
    finally:
        server.terminate()
        server.wait(timeout=30)
