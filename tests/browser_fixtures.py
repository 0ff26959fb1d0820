"""Headless Chromium from the OS packages, driven by Playwright, for the tests a person looks at.

Playwright's own browser download is not used (it is not available offline): the tests drive
``/usr/lib/chromium/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) and skip,
saying what is missing, without it or the ``playwright`` package. Screenshots go to
``SANDBOX_BROWSER_SHOTS`` (default: a ``browser-shots`` folder in pytest's temporary
directory); the path is printed. Import the fixtures into a test module to use them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("SANDBOX_CHROMIUM", "/usr/lib/chromium/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # required as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module", name="shots")
def shots_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (kept after the run: look at them)."""
    folder = Path(
        os.environ.get("SANDBOX_BROWSER_SHOTS") or tmp_path_factory.mktemp("browser-shots")
    )
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots: {folder}")
    return folder


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator:
    """Headless Chromium from the OS, or a skip that says what is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (no `playwright install` needed)"
    )
    if not CHROMIUM.exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: apt-get install chromium fonts-liberation (as .ci/run does)"
        )
    with sync_api.sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except Exception as exc:  # a broken install is a reason to skip, named
            pytest.skip(f"Chromium at {CHROMIUM} did not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()
