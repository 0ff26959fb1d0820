"""Notebook 07's exercise check: a miss gives a hint, the worked solution passes."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from sandbox.config import ROOT
from sandbox.course import check_new_golden_case
from sandbox.evals import add_golden_case
from sandbox.evals.golden import GOLDEN_DIR

SOLUTION = ROOT / "instructor" / "solutions" / "07_evals_and_drift.py"


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "my_golden"
    shutil.copytree(GOLDEN_DIR, folder, ignore=shutil.ignore_patterns("baselines", "*.toml"))
    return folder


def test_untouched_copy_gets_a_hint(tmp_path: Path) -> None:
    verdict = check_new_golden_case(_copy(tmp_path))
    assert not verdict and "add_golden_case" in repr(verdict)
    assert "attempt" not in repr(verdict)  # nothing added yet: a blank, not a miss


@pytest.mark.slow  # a dbt build of the changed golden set
def test_a_wrong_case_gets_a_hint_not_the_answer(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_EVAL_CACHE", str(tmp_path / "cache"))
    folder = _copy(tmp_path)
    add_golden_case(
        folder, "g900", plan_tier="starter", signed_up_days_ago=30,
        events=[(1 + i % 7, "login") for i in range(25)],
        acceptable=["feature_discovery"], reason="a heavy user", segment="power", case="x",
    )  # fmt: skip
    verdict = check_new_golden_case(folder)
    assert not verdict and "exactly 3 distinct event types" in repr(verdict)
    assert "upgrade_prompt" not in repr(verdict) and "outgrowing" not in repr(verdict)
    other = _copy(tmp_path / "label")
    kinds = ["login", "create_report", "export_csv"]
    add_golden_case(
        other, "g900", plan_tier="starter", signed_up_days_ago=30,
        events=[(1 + i % 7, kinds[i % 3]) for i in range(25)],
        acceptable=["feature_discovery"], reason="a heavy user", segment="power", case="x",
    )  # fmt: skip
    label = check_new_golden_case(other)
    assert not label and "preferred type goes first" in repr(label)
    assert "upgrade_prompt" not in repr(label) and "outgrowing" not in repr(label)


@pytest.mark.slow  # a dbt build of the changed golden set
def test_the_worked_solution_passes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_EVAL_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("solution_07", SOLUTION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = _copy(tmp_path)
    module.add_exercise_case(folder)
    verdict = check_new_golden_case(folder)
    assert verdict, repr(verdict)
    assert "answered upgrade_prompt (agrees)" in repr(verdict)
