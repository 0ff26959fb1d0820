"""Freshness and completeness drills: the gate measures the raw export against the as-of
date, and its message names the check, the latest event seen and the threshold.

The shipped files end at 2026-10-31 23:58:01 (220 events that day, about 205 a day the week
before): 2026-11-01 passes; a date months later, a date before any data, a stalled export
and a half-delivered day fail; the thresholds are dbt vars.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from sandbox.config import DBT_PROJECT_DIR, SHIPPED_AS_OF_DATE
from sandbox.data import GateFailed, build
from sandbox.data.drills import run_drill
from tests.reliability.harness import rows

MARTS = ("marts.fct_user_features_for_ai", "marts.dim_users")


def marts() -> dict[str, list[tuple]]:
    return {m: rows(f"select * from {m} order by user_id") for m in MARTS}


def _failure(error: GateFailed, test: str):
    return next(f for f in error.failures if f.test == test)


@pytest.mark.parametrize(
    ("day", "latest", "limit"),
    [
        ("2027-06-01", "2026-10-31 23:58:01 UTC", "2027-05-31 00:00:00 UTC"),
        ("2026-11-02", "2026-10-31 23:58:01 UTC", "2026-11-01 00:00:00 UTC"),
        ("1900-01-01", "missing (no row before that date)", "1899-12-31 00:00:00 UTC"),
    ],
)
def test_a_date_the_export_does_not_cover_fails_freshness(
    day: str, latest: str, limit: str, warehouse: Path
) -> None:
    before = marts()
    with pytest.raises(GateFailed) as caught:
        build(day)
    failure = _failure(caught.value, "fresh_as_of")
    assert (failure.model, failure.column) == ("staging.stg_user_events", "event_at")
    assert failure.detail == (
        f"freshness: the latest event_at before {day} is {latest}; the limit is {limit} "
        "(1 day before the as-of date, dbt var freshness_max_lag_days)"
    )
    assert failure.detail in str(caught.value)
    assert "still hold 2026-11-01" in str(caught.value)
    assert marts() == before


def test_a_half_delivered_day_fails_completeness(warehouse: Path) -> None:
    before = marts()
    outcome = run_drill("half_day_export")
    assert outcome.as_expected, outcome.error
    assert [f.test for f in outcome.error.failures] == ["volume_as_of"]  # fresh, but partial
    detail = outcome.error.failures[0].detail
    assert detail.startswith("completeness: ") and "rows on the day before 2026-11-01" in detail
    assert "over the 7 days before it; the minimum is 0.6 of that average" in detail
    assert "(dbt var volume_min_ratio); the latest event_at seen is 2026-10-31 11:" in detail
    assert marts() == before


def test_the_thresholds_are_dbt_vars(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deliberate gap is a reviewed change of the vars: then 2026-11-02 builds."""
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    settings = project / "dbt_project.yml"
    text = settings.read_text()
    for old, new in (
        ("freshness_max_lag_days: 1", "freshness_max_lag_days: 2"),
        ("volume_min_ratio: 0.6", "volume_min_ratio: 0"),
    ):
        assert old in text
        text = text.replace(old, new)
    settings.write_text(text)
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(project))
    result = build("2026-11-02")
    assert result.rows["marts.fct_user_features_for_ai"] == 500
    assert rows("select distinct as_of_date from marts.dim_users") == [(date(2026, 11, 2),)]


def test_the_shipped_date_passes_every_check(warehouse: Path) -> None:
    result = build(SHIPPED_AS_OF_DATE)
    checks = {n.name.split("_stg_")[0] for n in result.nodes if n.kind == "data test"}
    assert {"fresh_as_of", "volume_as_of"} <= checks
    assert {"has_rows_fct_user_features_for_ai_", "has_rows_dim_users_"} <= {
        n.name for n in result.nodes
    }
