"""Drift drills through the real pipeline: dbt builds, the offline fake answers, the watch judges.

- the shipped 3-day backfill (2026-10-30..2026-11-01) raises no alarm;
- a stale-data day (the raw events stopped a month before the date) turns most users into
  ``churn_risk`` and is caught;
- a change to the context string that flips one type into another is caught.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from sandbox.config import DEFAULT_RAW_DIR, ROOT
from sandbox.data import build
from sandbox.decision import infer
from sandbox.decision.drift import check_drift

pytestmark = pytest.mark.slow  # four dbt builds and inference runs

BACKFILL = (date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1))
NEXT_DAY = date(2026, 11, 2)


def _run_day(day: date) -> None:
    build(day)
    summary = infer(day, llm="mock", progress=False)
    assert summary.exit_code == 0, summary.render()


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse holding the shipped 3-day backfill, answered by the offline fake."""
    path = tmp_path_factory.mktemp("backfill") / "sandbox.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SANDBOX_WAREHOUSE", str(path))
        for name in ("SANDBOX_RAW_DIR", "SANDBOX_DBT_PROJECT_DIR", "SANDBOX_MOCK_FAULTS"):
            mp.delenv(name, raising=False)
        for day in BACKFILL:
            _run_day(day)
    return path


@pytest.fixture
def warehouse_copy(backfilled: Path, isolated_env: Path) -> Path:
    isolated_env.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(backfilled, isolated_env)
    return isolated_env


def test_no_false_alarm_on_the_shipped_backfill(warehouse_copy: Path) -> None:
    first, second, third = (check_drift(day) for day in BACKFILL)
    assert first.status == "insufficient_history"  # nothing before the first date
    assert second.status == "insufficient_history"  # one earlier date is not a reference yet
    assert third.status == "ok", third.message
    assert third.type_mix_psi < 0.25 and third.confidence_psi < 0.25
    assert third.window_dates == list(BACKFILL[:2]) and third.rows == 500


def test_drill_stale_data_day_is_caught(warehouse_copy: Path, tmp_path: Path, monkeypatch) -> None:
    """The raw extract was not refreshed for a month: every user looks gone."""
    stale = tmp_path / "raw"
    stale.mkdir()
    shutil.copy(DEFAULT_RAW_DIR / "users.csv", stale / "users.csv")
    con = duckdb.connect()
    con.execute(
        f"copy (select * from read_csv('{DEFAULT_RAW_DIR / 'events.csv'}', all_varchar=true) "
        f"where created_at < '2026-10-02') to '{stale / 'events.csv'}' (header, delimiter ',')"
    )
    con.close()
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(stale))
    _run_day(NEXT_DAY)
    report = check_drift(NEXT_DAY)
    assert report.status == "drift", report.message
    assert report.type_mix["churn_risk"] > 0.9
    assert "churn_risk" in report.message and "kept" in report.message
    with duckdb.connect(str(warehouse_copy), read_only=True) as check:  # answers not discarded
        kept = check.execute(
            "select count(*) from marts.user_recommendations where execution_date = ?", [NEXT_DAY]
        ).fetchone()[0]
    assert kept == report.rows == 500


def test_drill_a_wording_change_that_flips_a_type_is_caught(
    warehouse_copy: Path, tmp_path: Path, monkeypatch
) -> None:
    """'No events in the last 7 days' reworded: the quiet-week users stop being re_engagement."""
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    sql = project / "models" / "marts" / "fct_user_features_for_ai.sql"
    sql.write_text(
        sql.read_text().replace("' ago. No events in the last 7 days.'", "' ago. Quiet this week.'")
    )
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(project))
    _run_day(NEXT_DAY)
    report = check_drift(NEXT_DAY)
    assert report.status == "drift", report.message
    assert report.type_mix["re_engagement"] == 0.0 < report.window_type_mix["re_engagement"]
    assert "re_engagement" in report.message or "feature_discovery" in report.message
