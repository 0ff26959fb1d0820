"""The drift statistic and its verdicts, on rows written straight into the staging table."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from sandbox.config import SandboxError
from sandbox.decision.drift import DriftThresholds, check_drift, load_thresholds, psi
from sandbox.decision.tables import ensure_tables
from sandbox.warehouse import connect

DAY = date(2026, 11, 1)
NORMAL = {
    "feature_discovery": (0.45, 0.6),
    "churn_risk": (0.3, 0.9),
    "re_engagement": (0.15, 0.7),
    "upgrade_prompt": (0.1, 0.75),
}


def add_day(day: date, mix: dict[str, tuple[float, float]], rows: int = 400) -> None:
    """Insert ``rows`` answers for ``day``: ``mix`` maps type -> (share, confidence)."""
    with connect() as con:
        ensure_tables(con, "decision.recommendations_staging")
        start = 0
        for kind, (share, confidence) in mix.items():
            n = round(rows * share)
            con.execute(
                """
                insert into decision.recommendations_staging (execution_date, user_id,
                    recommendation_type, recommendation_text, confidence_score, reasoning,
                    model, prompt_version, mode, escalated, input_tokens, output_tokens,
                    cost_usd, input_sha, run_id, created_at)
                select ?, 'u' || (i + ?), ?, 'text', ?, 'why', 'm', 'pv', 'realtime', false,
                       1, 1, 0.0, 'sha', 'run', now()::timestamp
                from range(?) t(i)
                """,
                [day, start, kind, confidence, n],
            )
            start += n


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    same = {"a": 0.5, "b": 0.5}
    assert psi(same, same) == 0.0
    small = psi({"a": 0.55, "b": 0.45}, same)
    large = psi({"a": 0.9, "b": 0.1}, same)
    assert 0 < small < 0.1 < 0.25 < large
    assert psi({"a": 1.0}, {"b": 1.0}) > 10  # empty buckets are floored, not infinite


def test_empty_warehouse_has_no_verdict(isolated_env: Path) -> None:
    with connect():
        pass
    report = check_drift(DAY)
    assert report.status == "insufficient_history" and report.rows == 0
    assert "watch starts once there is history" in report.message


def test_steady_days_are_ok(isolated_env: Path) -> None:
    for back in range(4, -1, -1):
        wobble = {
            k: (s + (0.01 if k == "churn_risk" and back % 2 else 0.0), c)
            for k, (s, c) in NORMAL.items()
        }
        add_day(DAY - timedelta(days=back), wobble)
    report = check_drift(DAY)
    assert report.status == "ok", report.message
    assert len(report.window_dates) == 4 and report.window_rows > 1500
    assert report.type_mix_psi < 0.01 and report.confidence_psi < 0.01
    assert "no drift" in report.message


def test_stale_day_everyone_churn_risk_is_drift(isolated_env: Path) -> None:
    for back in (3, 2, 1):
        add_day(DAY - timedelta(days=back), NORMAL)
    add_day(DAY, {"churn_risk": (1.0, 0.9)})
    report = check_drift(DAY)
    assert report.status == "drift" and report.drifted
    assert report.type_mix_psi > 1 and report.type_mix["churn_risk"] == 1.0
    assert "churn_risk 30% -> 100%" in report.message and "answers are kept" in report.message


def test_one_type_flipping_into_another_is_drift(isolated_env: Path) -> None:
    for back in (2, 1):
        add_day(DAY - timedelta(days=back), NORMAL)
    flipped = dict(NORMAL)
    flipped["upgrade_prompt"] = (0.55, 0.6)  # every feature_discovery answer became an upgrade
    del flipped["feature_discovery"]
    add_day(DAY, flipped)
    report = check_drift(DAY)
    assert report.status == "drift"
    assert "type mix moved" in report.message and "upgrade_prompt 10% -> 55%" in report.message


def test_confidence_shift_alone_is_drift(isolated_env: Path) -> None:
    add_day(DAY - timedelta(days=2), NORMAL)
    add_day(DAY - timedelta(days=1), NORMAL)
    add_day(DAY, {k: (s, 0.35) for k, (s, _) in NORMAL.items()})
    report = check_drift(DAY)
    assert report.status == "drift" and report.type_mix_psi < 0.01
    assert "confidence distribution moved" in report.message


def test_the_window_excludes_older_dates_and_later_ones(isolated_env: Path) -> None:
    add_day(DAY - timedelta(days=8), {"churn_risk": (1.0, 0.9)})  # outside a 7-day window
    add_day(DAY + timedelta(days=1), {"churn_risk": (1.0, 0.9)})  # after the date
    add_day(DAY - timedelta(days=2), NORMAL)
    add_day(DAY - timedelta(days=1), NORMAL)
    add_day(DAY, NORMAL)
    report = check_drift(DAY)
    assert report.window_dates == [DAY - timedelta(days=2), DAY - timedelta(days=1)]
    assert report.status == "ok"
    wider = check_drift(DAY, window_days=8)
    assert wider.window_dates[0] == DAY - timedelta(days=8)
    assert wider.type_mix_psi > 0.1 > report.type_mix_psi


def test_too_few_rows_or_dates_give_no_verdict(isolated_env: Path) -> None:
    add_day(DAY, NORMAL)
    assert check_drift(DAY).status == "insufficient_history"  # no earlier date
    add_day(DAY - timedelta(days=1), NORMAL)
    assert check_drift(DAY).status == "insufficient_history"  # one earlier date is too noisy
    assert check_drift(DAY, thresholds=DriftThresholds(min_window_days=1)).status == "ok"
    add_day(DAY - timedelta(days=2), NORMAL)
    assert check_drift(DAY).status == "ok"
    assert (
        check_drift(DAY, thresholds=DriftThresholds(min_rows=10_000)).status
        == "insufficient_history"
    )


def test_thresholds_come_from_configuration(isolated_env: Path, tmp_path: Path) -> None:
    shipped = load_thresholds()
    assert shipped.type_mix_psi == 0.25 and shipped.confidence_psi == 0.25
    assert shipped.min_window_days == 2
    add_day(DAY - timedelta(days=2), NORMAL)
    add_day(DAY - timedelta(days=1), NORMAL)
    shifted = dict(NORMAL, churn_risk=(0.36, 0.9), feature_discovery=(0.39, 0.6))
    add_day(DAY, shifted)
    assert check_drift(DAY).status == "ok"
    config = tmp_path / "drift.toml"
    config.write_text("type_mix_psi = 0.005\n")
    assert check_drift(DAY, thresholds=load_thresholds(config)).status == "drift"
    config.write_text("type_mix_psi = 'high'\nconfidence = 1\n")
    with pytest.raises(SandboxError, match="unknown setting"):
        load_thresholds(config)


def test_the_record_is_plain_values_and_a_bad_date_is_refused(isolated_env: Path) -> None:
    for days_before in (2, 1, 0):
        add_day(DAY - timedelta(days=days_before), NORMAL)
    record = check_drift("2026-11-01").as_record()
    assert record["execution_date"] == "2026-11-01" and record["status"] == "ok"
    with pytest.raises(SandboxError):
        check_drift("2026-11-01junk")
