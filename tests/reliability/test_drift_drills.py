"""Drift drills through the real pipeline: dbt builds, the offline fake answers, the watch judges.

- the shipped 3-day backfill (2026-10-30..2026-11-01) raises no alarm;
- a stale-data day (the raw events stopped a month before the date) turns most users into
  ``churn_risk`` and is caught. The data plane's freshness check stops such a day first; these
  drills relax it on purpose (a project copy with a 60-day lag, as a team might for a known
  gap) to show the drift watch is a second, independent line of defence;
- a change to the context string that flips one type into another is caught;
- through ``sandbox run`` (Airflow's ``check_drift`` task), the stale day is flagged in
  ``ops.pipeline_runs`` and its answers are still published.
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
from sandbox.warehouse import connect
from tests.control.conftest import (  # noqa: F401  (fixtures)
    airflow_home_fixture,
    migrated_home_fixture,
    sandbox_run,
    task_states,
)

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


def _relaxed_project(folder: Path) -> Path:
    """A copy of the dbt project whose freshness and volume checks were relaxed on purpose."""
    shutil.copytree(ROOT / "dbt_project", folder, ignore=shutil.ignore_patterns("target", "logs"))
    config = folder / "dbt_project.yml"
    text = config.read_text()
    for old, new in (
        ("freshness_max_lag_days: 1 ", "freshness_max_lag_days: 60 "),
        ("volume_min_ratio: 0.6 ", "volume_min_ratio: 0.0 "),
    ):
        assert old in text, f"{old!r} not in dbt_project.yml"
        text = text.replace(old, new)
    config.write_text(text)
    return folder


def _stale_raw_dir(folder: Path) -> Path:
    """The shipped raw files as if the events extract had stopped a month before the date."""
    folder.mkdir()
    shutil.copy(DEFAULT_RAW_DIR / "users.csv", folder / "users.csv")
    con = duckdb.connect()
    con.execute(
        f"copy (select * from read_csv('{DEFAULT_RAW_DIR / 'events.csv'}', all_varchar=true) "
        f"where created_at < '2026-10-02') to '{folder / 'events.csv'}' (header, delimiter ',')"
    )
    con.close()
    return folder


def test_drill_stale_data_day_is_caught(warehouse_copy: Path, tmp_path: Path, monkeypatch) -> None:
    """The raw extract was not refreshed for a month: every user looks gone."""
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(_stale_raw_dir(tmp_path / "raw")))
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(_relaxed_project(tmp_path / "project")))
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
    project = _relaxed_project(tmp_path / "dbt_project")  # 2026-11-02 is a day past the export
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


def test_drill_sandbox_run_flags_the_stale_day_and_publishes_it(
    airflow_home: Path, tmp_path: Path
) -> None:
    """The backfill, then the stale day, through Airflow: the run is marked, nothing is lost."""
    backfill = sandbox_run("--start", str(BACKFILL[0]), "--end", str(BACKFILL[-1]))
    assert backfill.returncode == 0, backfill.stdout + backfill.stderr
    assert "drift watch 2026-11-01: OK: 2026-11-01: no drift" in backfill.stdout

    stale = sandbox_run(
        "--date",
        str(NEXT_DAY),
        env={
            "SANDBOX_RAW_DIR": str(_stale_raw_dir(tmp_path / "raw")),
            "SANDBOX_DBT_PROJECT_DIR": str(_relaxed_project(tmp_path / "project")),
        },
    )
    assert stale.returncode == 3, stale.stdout + stale.stderr  # published, but look first
    assert "drift watch 2026-11-02: DRIFT: 2026-11-02: drift against" in stale.stdout
    assert "DRIFT: 2026-11-02: the answers are published" in stale.stdout
    states = task_states(airflow_home, "ai_recommendation_pipeline")
    assert (states["write_results"], states["check_drift"]) == ("success", "failed")
    with connect(read_only=True) as con:
        runs = con.execute(
            "select execution_date, status, drift_status, drift_detail from ops.pipeline_runs"
            " order by execution_date"
        ).fetchall()
        published = con.execute(
            "select count(*) from marts.user_recommendations where execution_date = ?", [NEXT_DAY]
        ).fetchone()[0]
    assert [(r[0], r[1], r[2]) for r in runs] == [
        (BACKFILL[0], "success", "insufficient_history"),
        (BACKFILL[1], "success", "insufficient_history"),
        (BACKFILL[2], "success", "ok"),
        (NEXT_DAY, "success", "drift"),  # the rows' status stands; the flag says look
    ]
    assert "churn_risk" in runs[-1][3] and published == 500
