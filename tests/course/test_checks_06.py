"""Notebook 06's helpers and exercise checks: the worked solutions pass, blanks and wrong answers do not."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from sandbox import course
from sandbox.data import build
from sandbox.decision import prepare_features, run_llm_inference
from sandbox.decision.projection import TIERS
from tests.conftest import AS_OF

SOLUTION = Path(__file__).resolve().parents[2] / "notebooks" / "solutions" / "06_scale_and_cost.py"


@pytest.fixture
def answers(warehouse: Path) -> dict:
    """The shipped data's ledger (one offline run), then the worked solutions run against it."""
    prepare_features(AS_OF)
    run_llm_inference(AS_OF, progress=False)
    return runpy.run_path(str(SOLUTION))


def test_06_solutions_pass(answers: dict) -> None:
    profile = answers["profile"]
    assert course.check_million_user_batch_cost(profile, answers["batch_cost"])
    assert course.check_workers_for_tier(profile, answers["console"], answers["workers_needed"])


def test_06_blank_and_wrong_answers_do_not(answers: dict) -> None:
    profile, console = answers["profile"], answers["console"]
    assert not course.check_million_user_batch_cost(profile, None)
    realtime = course.check_million_user_batch_cost(profile, 2 * answers["batch_cost"])
    assert not realtime and "realtime price" in repr(realtime)
    assert not course.check_million_user_batch_cost(profile, 1.0)
    # the 1,000,000-user price the lesson's table shows is not this question's answer
    shown = course.check_million_user_batch_cost(profile, answers["batch_cost"] / 2.5)
    assert not shown and "1,000,000" in repr(shown)
    assert course.check_million_user_batch_cost(profile, f"${answers['batch_cost']:,.2f}")
    assert not course.check_million_user_batch_cost(profile, "")
    assert not course.check_workers_for_tier(profile, console, None)
    assert course.check_workers_for_tier(profile, console, str(answers["workers_needed"]))
    only_rpm = course.check_workers_for_tier(profile, console, round(4_000 / 60 * 2.0))
    assert not only_rpm and "token limit" in repr(only_rpm)
    assert not course.check_workers_for_tier(profile, console, answers["workers_needed"] + 10)
    # the answer depends on the tier: tier 1's requests/min bind, not the console's tokens
    assert not course.check_workers_for_tier(profile, TIERS["tier 1"], answers["workers_needed"])


def test_build_phases_split_a_build(warehouse: Path) -> None:
    result = build(AS_OF)
    phases = course.build_phases(result)
    assert phases["total_s"] == result.elapsed_s
    assert phases["sql_s"] > 0 and phases["startup_s"] >= 0
    assert phases["startup_s"] + phases["sql_s"] == pytest.approx(result.elapsed_s, abs=1e-6)
