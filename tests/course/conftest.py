"""Fixtures of the course's tests: the worked solutions, read from the instructor edition."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from sandbox.config import ROOT

SOLUTIONS = ROOT / "notebooks" / "solutions"


def solution(name: str) -> dict:
    """The names a worked solution defines (``SOLUTIONS/<name>.py`` run as a script)."""
    return runpy.run_path(str(SOLUTIONS / f"{name}.py"))


@pytest.fixture
def solutions() -> Path:
    """The folder that holds the worked solutions."""
    return SOLUTIONS
