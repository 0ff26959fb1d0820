"""Notebook 06's helpers and checks: the learner's own pricing and staffing, on hidden profiles.

The shortcut (the projection helpers the lesson used) is switched off during the check.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sandbox import course
from sandbox.data import build
from sandbox.decision import prepare_features, run_llm_inference
from tests.conftest import AS_OF
from tests.course.conftest import solution


@pytest.fixture
def answers(warehouse: Path) -> dict:
    """The shipped data's ledger (one offline run), then the worked solutions run against it."""
    prepare_features(AS_OF)
    run_llm_inference(AS_OF, progress=False)
    return solution("06_scale_and_cost")


def test_06_solutions_pass(answers: dict) -> None:
    profile = answers["profile"]
    assert course.check_batch_cost(profile, answers["batch_cost"])
    assert course.check_workers(profile, answers["workers_for"])


def test_06_blank_wrong_and_shortcut_answers_do_not(answers: dict) -> None:
    from sandbox.decision import projection as pj

    profile, mine = answers["profile"], answers["batch_cost"]
    assert not course.check_batch_cost(profile, None)
    assert not course.check_batch_cost(profile, 1234.5)  # a number typed in: not a function
    realtime = course.check_batch_cost(profile, lambda p, b, users: 2 * mine(p, b, users))
    assert not realtime and "realtime price" in repr(realtime)
    fixed = course.check_batch_cost(profile, lambda p, b, users: mine(p, b, 2_500_000))
    assert not fixed  # the size the notebook asks about is not the only one checked

    def by_projection(p, book, users):
        return pj.project(
            p, users, book=book, tier=pj.TIERS["tier 2"], plan="cheap", mode="batch"
        ).cost_usd

    shortcut = course.check_batch_cost(profile, by_projection)
    assert not shortcut and "sandbox.decision.projection" in repr(shortcut)

    workers_for = answers["workers_for"]
    assert not course.check_workers(profile, None)
    def only_rpm(p, b, tier, lat):
        return math.ceil(tier.for_model(b.get(b.primary).id).requests_per_minute / 60 * lat)

    # the tiers are random: an answer that ignores token limits must fail every draw
    assert not any(course.check_workers(profile, only_rpm) for _ in range(30))
    assert not course.check_workers(
        profile, lambda p, b, tier, lat: workers_for(p, b, tier, lat) + 10
    )
    staffed = course.check_workers(
        profile, lambda p, b, tier, lat: pj.workers_to_saturate(p, book=b, tier=tier, latency_s=lat)
    )
    assert not staffed and "helper" in repr(staffed)


def test_build_phases_split_a_build(warehouse: Path) -> None:
    result = build(AS_OF)
    phases = course.build_phases(result)
    assert phases["total_s"] == result.elapsed_s
    assert phases["sql_s"] > 0 and phases["startup_s"] >= 0
    assert phases["startup_s"] + phases["sql_s"] == pytest.approx(result.elapsed_s, abs=1e-6)
