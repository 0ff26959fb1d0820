"""Rolling out a new prompt by hand (docs/decision-plane.md): delete the stale staged rows, infer."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.config import SHIPPED_AS_OF_DATE as DAY
from sandbox.config import SandboxError
from sandbox.decision import infer
from sandbox.decision.prompt import PROMPT_VERSION
from sandbox.warehouse import connect

OLD = "000000000old"
# the statement docs/decision-plane.md shows
DELETE_STALE = (
    "delete from decision.recommendations_staging where execution_date = ? and prompt_version <> ?"
)


def _age(where: str = "true") -> set[str]:
    """Pretend some of the date's rows were answered under an older prompt; their users."""
    with connect() as con:
        for table in ("decision.recommendations_staging", "marts.user_recommendations"):
            con.execute(f"update {table} set prompt_version = ? where {where}", [OLD])
        found = con.execute(
            "select user_id from decision.recommendations_staging where prompt_version = ?", [OLD]
        ).fetchall()
    return {user for (user,) in found}


def _versions(table: str) -> dict[str, int]:
    with connect(read_only=True) as con:
        rows = con.execute(
            f"select prompt_version, count(*) from {table} where execution_date = ? group by 1",
            [DAY],
        ).fetchall()
    return dict(rows)


def _requests(log: Path) -> int:
    """Messages sent (``count_tokens`` calls for the estimate are free and not counted)."""
    lines = log.read_text().splitlines() if log.exists() else []
    return sum('"/v1/messages"' in line for line in lines)


@pytest.fixture
def answered(warehouse: Path, tmp_path: Path, monkeypatch) -> Path:
    assert infer(DAY, llm="mock", progress=False).exit_code == 0
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log))
    return log


def test_default_run_stays_pay_once(answered: Path) -> None:
    _age()
    infer(DAY, llm="mock", progress=False)
    assert _requests(answered) == 0
    assert _versions("marts.user_recommendations") == {OLD: 500}


def test_deleting_stale_rows_re_asks_exactly_those(answered: Path) -> None:
    aged = _age(
        "user_id in (select user_id from decision.recommendations_staging order by user_id limit 120)"
    )
    assert len(aged) == 120
    with connect() as con:
        con.execute(DELETE_STALE, [DAY, PROMPT_VERSION])
    summary = infer(DAY, llm="mock", progress=False)
    assert summary.exit_code == 0 and summary.done == 120 and summary.skipped == 380
    assert 120 <= _requests(answered) <= 240  # one request per row, plus escalations
    with connect(read_only=True) as con:  # the run paid for the deleted rows and nothing else
        paid = con.execute(
            "select user_id, sum(cost_usd) from decision.llm_calls "
            "where run_id = ? and purpose <> 'estimate' group by 1",
            [summary.run_id],
        ).fetchall()
    assert {user for user, _ in paid} == aged
    assert sum(cost for _, cost in paid) == pytest.approx(summary.cost_usd, abs=1e-6)
    assert _versions("decision.recommendations_staging") == {PROMPT_VERSION: 500}
    assert _versions("marts.user_recommendations") == {PROMPT_VERSION: 500}
    again = infer(DAY, llm="mock", progress=False)
    assert again.done == 0 and again.requests == 0  # nothing left to roll out


def test_a_refused_budget_sends_nothing(answered: Path) -> None:
    _age()
    with connect() as con:
        con.execute(DELETE_STALE, [DAY, PROMPT_VERSION])
    with pytest.raises(SandboxError, match="exceeds --max-cost-usd"):
        infer(DAY, llm="mock", progress=False, max_cost_usd=0.0001)
    assert _requests(answered) == 0
