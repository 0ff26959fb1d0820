"""Bad input drills: every kind of broken raw file is either absorbed by staging as documented,
or fails the gate naming the check, the model/column and the raw file — never a traceback —
and the published mart keeps its rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.data.drills import DRILLS, run_drill
from sandbox.warehouse import connect


def _mart() -> list[tuple]:
    with connect(read_only=True) as con:
        return con.execute(
            "select * from marts.fct_user_features_for_ai order by user_id"
        ).fetchall()


@pytest.mark.parametrize("name", list(DRILLS))
def test_drill(warehouse: Path, name: str) -> None:
    before = _mart()
    outcome = run_drill(name)
    assert outcome.as_expected, f"{name}: {outcome.error}"
    assert _mart() == before, "the published mart must not change"
    if outcome.error is not None:
        text = str(outcome.error)
        assert "Traceback" not in text
        failure = outcome.error.failures[0]
        if failure.model and failure.model.startswith("staging."):
            assert failure.raw_file and Path(failure.raw_file).name in text


def test_there_are_at_least_ten_kinds_of_bad_input() -> None:
    assert len(DRILLS) >= 10
    assert sum(d.expect == "handled" for d in DRILLS.values()) >= 2


def test_a_drill_builds_a_project_copy_only_when_it_changed_a_model() -> None:
    """Drills that break only the data build the shipped project (whose parse is reused);
    the ones that change a model build their own copy, and the shipped one stays as it was."""
    import os

    from sandbox.config import DBT_PROJECT_DIR
    from sandbox.config import dbt_project_dir as project_dir
    from sandbox.data.drills import broken_inputs

    mart_sql = DBT_PROJECT_DIR / "models" / "marts" / "fct_user_features_for_ai.sql"
    shipped_sql = mart_sql.read_text()
    with broken_inputs("duplicate_key") as (raw, project):
        assert project == project_dir() == DBT_PROJECT_DIR
        assert os.environ["SANDBOX_RAW_DIR"] == str(raw)
    with broken_inputs("runaway_summary") as (_, project):
        assert project != DBT_PROJECT_DIR and project_dir() == project
        copied = project / "models" / "marts" / "fct_user_features_for_ai.sql"
        assert copied.read_text() != shipped_sql
    assert mart_sql.read_text() == shipped_sql
    assert not project.exists()  # the scratch copy is gone after the block
