"""Fixtures of the course's tests: the worked solutions (instructor edition), fresh attempts."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from sandbox.config import ROOT
from sandbox.course import verdicts

SOLUTIONS = ROOT / "instructor" / "solutions"


def solution(name: str) -> dict:
    """The names a worked solution defines (``SOLUTIONS/<name>.py`` run as a script)."""
    return runpy.run_path(str(SOLUTIONS / f"{name}.py"))


@pytest.fixture(autouse=True)
def fresh_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test counts its own misses (the bounded attempts), in its own file."""
    path = tmp_path / "attempts.json"
    monkeypatch.setenv("SANDBOX_COURSE_ATTEMPTS", str(path))
    monkeypatch.delenv("SANDBOX_COURSE_GRADES", raising=False)
    monkeypatch.setattr(verdicts, "MAX_ATTEMPTS", 1_000)  # one test tries many wrong answers
    return path
