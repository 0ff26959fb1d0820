"""The course in a real browser: headless Chromium (the OS package) driven by Playwright.

- JupyterLab with this project's settings: no news pop-up; notebook 02 run from the menu, a
  drill picked in the widget and run, the gate's message shown; notebook 03's fault-storm
  slider moved and its chart redrawn.
- dbt's docs site: the lineage graph renders.

Airflow's UI in the browser (a recorded task's log in its page) is checked beside the REST
API that serves it, in ``test_airflow_scheduler.py``. The browser and where the screenshots
go: ``tests/browser_fixtures.py``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.config import ROOT, SHIPPED_AS_OF_DATE
from tests.browser_fixtures import browser_fixture, shots_fixture  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PORTS = range(8891, 8900)
SETTINGS_DIR = ROOT / "notebooks" / ".jupyter" / "lab" / "settings"
NEWS_QUESTION = "official Jupyter news"


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    pytest.skip(f"no free port in {PORTS.start}-{PORTS.stop - 1} on 127.0.0.1")


def _wait_for(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):  # noqa: S310 (localhost)
                return
        except urllib.error.HTTPError:
            return  # it answers (e.g. 403 without a token): up
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A temporary root for the warehouses and Airflow, as ``make lab`` would use the repo's."""
    root = tmp_path_factory.mktemp("browser-root")
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_NOTEBOOK_SCRATCH"}
    env.update(SANDBOX_WAREHOUSE=str(root / "warehouse" / "sandbox.duckdb"),
               SANDBOX_AIRFLOW_HOME=str(root / ".airflow"), SANDBOX_LLM="mock")  # fmt: skip
    env["ROOT"] = str(root)
    return env


@pytest.fixture(scope="module")
def lab(workspace: dict[str, str]) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 over a copy of the notebooks, with the project's settings."""
    root = Path(workspace["ROOT"])
    notebooks = root / "notebooks"
    shutil.copytree(
        ROOT / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints")
    )
    port, token = _free_port(), secrets.token_hex(16)
    log = root / "lab.log"
    env = {**workspace, "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
           "JUPYTER_CONFIG_DIR": str(root / "config"), "JUPYTERLAB_SETTINGS_DIR": str(root / "user-settings")}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--allow-root",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={notebooks}", f"--LabApp.app_settings_dir={SETTINGS_DIR}"],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/status?token={token}", server, log)
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.terminate()
        server.wait(timeout=30)


def _open(page, lab, name: str) -> None:
    base, token = lab
    page.goto(f"{base}/lab/tree/{name}?token={token}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
    page.wait_for_function(  # the kernel is up and idle (status bar: "Python 3 (ipykernel) | Idle")
        "() => document.body.innerText.includes('(ipykernel) | Idle')", timeout=300_000, polling=500
    )


def _menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def _wait_until_run(page, minutes: float, *, every_cell: bool = False) -> None:
    """Wait until no cell is queued or running ('[*]') and the kernel is idle; with
    ``every_cell``, also until no code cell is left unrun ('[ ]')."""
    page.wait_for_timeout(1000)
    page.wait_for_function(
        """(every) => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                .map(p => p.innerText);
            return prompts.length > 0 && !prompts.some(t => t.includes('*'))
                && !(every && prompts.some(t => t.includes('[ ]')))
                && document.body.innerText.includes('(ipykernel) | Idle');
        }""",
        arg=every_cell, timeout=minutes * 60_000, polling=1000,
    )  # fmt: skip


def _errors(page) -> list[str]:
    return page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    ).all_inner_texts()


def test_lab_runs_02_and_its_drill_widget(browser, lab, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _open(page, lab, "02_quality_gate.ipynb")
    page.wait_for_timeout(3000)
    assert NEWS_QUESTION not in page.inner_text("body"), "the news pop-up is on"
    assert "Error displaying widget" not in page.inner_text("body")  # stored outputs hold no views
    _menu(page, "Run", "Run All Cells")
    _wait_until_run(page, minutes=20, every_cell=True)
    page.screenshot(path=str(shots / "02-after-run-all.png"))
    tracebacks = page.locator(".jp-OutputArea-output", has_text="Traceback").count()
    assert tracebacks == 0, f"{tracebacks} cell(s) of 02 raised"
    picker = page.locator(".widget-dropdown select").first
    picker.scroll_into_view_if_needed()
    picker.select_option(label="The same user twice")
    page.locator(".widget-button", has_text="Run").first.click()
    message = page.locator(".widget-output", has_text="the quality gate failed")
    message.wait_for(timeout=300_000)
    message.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "02-drill-run.png"))
    text = message.inner_text()
    assert "unique on staging.stg_users.user_id" in text and "published mart unchanged" in text
    assert NEWS_QUESTION not in page.inner_text("body")
    # save, then reopen with the kernel still running: the widgets come back, not an error
    _menu(page, "File", "Save Notebook")
    page.wait_for_timeout(3000)
    page.reload()
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
    page.locator(".widget-dropdown select").first.wait_for(timeout=120_000)
    page.locator(".widget-dropdown select").first.scroll_into_view_if_needed()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(shots / "02-reopened.png"))
    assert "model not found" not in page.inner_text("body")
    page.close()


def test_lab_redraws_the_fault_storm_chart_when_a_slider_moves(browser, lab, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _open(page, lab, "03_decision_plane.ipynb")
    cell = page.locator(".jp-CodeCell", has_text="sliders = {").first
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-prompt").click()
    _menu(page, "Run", "Run All Above Selected Cell")
    _wait_until_run(page, minutes=10)
    _menu(page, "Run", "Run Selected Cell")
    _wait_until_run(page, minutes=5)
    chart = page.locator(".widget-output img").first
    chart.wait_for(timeout=180_000)
    chart.scroll_into_view_if_needed()
    before = chart.get_attribute("src")
    page.screenshot(path=str(shots / "03-storm-before.png"))
    handle = page.locator(".widget-slider .noUi-handle").nth(1)  # the 429 share
    handle.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "(src) => { const img = document.querySelector('.widget-output img'); return img && img.src !== src }",
        arg=before, timeout=180_000, polling=1000,
    )  # fmt: skip
    page.wait_for_timeout(1500)
    page.locator(".widget-output img").first.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "03-storm-after.png"))
    assert page.locator(".widget-slider .widget-readout").nth(1).inner_text().strip() not in (
        "0.20",
        "0.2",
    )
    page.close()


def test_dbt_docs_show_the_lineage_graph(browser, workspace: dict[str, str], shots: Path) -> None:
    sandbox = str(Path(sys.executable).with_name("sandbox"))
    env = {k: v for k, v in workspace.items() if k != "ROOT"}
    for command in (["build"], ["docs"]):
        done = subprocess.run([sandbox, *command, "--date", str(SHIPPED_AS_OF_DATE)], env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    site = Path(workspace["SANDBOX_WAREHOUSE"]).parent / "dbt_target" / "static_index.html"
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{site.as_uri()}#!/model/model.three_plane_sandbox.fct_user_features_for_ai")
    page.locator("a[title='View Lineage Graph']").click()
    page.locator(".launcher-content canvas").first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(shots / "dbt-docs-lineage.png"))
    painted = page.evaluate(
        """() => [...document.querySelectorAll('.launcher-content canvas')].some(c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
            return false; })"""
    )
    assert painted, "the lineage graph's canvas is blank"
    page.close()
