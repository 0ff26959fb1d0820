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
