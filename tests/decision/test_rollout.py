"""``sandbox infer --reprocess prompt``: re-ask rows answered under an older prompt or model."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cli import main
from sandbox.config import SHIPPED_AS_OF_DATE as DAY
from sandbox.config import SandboxError
from sandbox.decision import infer
from sandbox.decision.prompt import PROMPT_VERSION
from sandbox.decision.steps import reprocess_prompt
from sandbox.decision.tables import SUPERSEDED
from sandbox.warehouse import connect

OLD = "000000000old"


def _age(where: str = "true") -> int:
    """Pretend some of the date's rows were answered under an older prompt."""
    with connect() as con:
        for table in ("decision.recommendations_staging", "marts.user_recommendations"):
            con.execute(f"update {table} set prompt_version = ? where {where}", [OLD])
        return con.execute(
            "select count(*) from decision.recommendations_staging where prompt_version = ?", [OLD]
        ).fetchone()[0]


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


def test_reprocess_re_asks_only_the_old_rows(answered: Path) -> None:
    aged = _age(
        "user_id in (select user_id from decision.recommendations_staging order by user_id limit 120)"
    )
    assert aged == 120
    result = reprocess_prompt(DAY, llm="mock", progress=False)
    assert result.stale == 120 and result.kept_old == 0 and result.exit_code == 0
    assert result.summary.done == 120
    assert 120 <= _requests(answered) <= 240  # one request per row, plus escalations
    assert _versions("decision.recommendations_staging") == {PROMPT_VERSION: 500}
    assert _versions("marts.user_recommendations") == {PROMPT_VERSION: 500}
    assert _versions(SUPERSEDED) == {OLD: 120}  # the old answers are kept
    again = reprocess_prompt(DAY, llm="mock", progress=False)
    assert again.stale == 0 and again.summary.done == 0  # nothing left to roll out


def test_budget_refusal_keeps_every_old_answer(answered: Path) -> None:
    _age()
    with pytest.raises(SandboxError, match="exceeds --max-cost-usd"):
        reprocess_prompt(DAY, llm="mock", progress=False, max_cost_usd=0.0001)
    assert _requests(answered) == 0
    assert _versions("decision.recommendations_staging") == {OLD: 500}
    assert _versions("marts.user_recommendations") == {OLD: 500}


def test_rows_not_re_asked_keep_their_old_answer(answered: Path) -> None:
    _age()
    result = reprocess_prompt(DAY, llm="mock", progress=False, batch_size=50)
    assert result.stale == 500 and result.kept_old == 450 and result.exit_code == 3
    assert _versions("marts.user_recommendations") == {PROMPT_VERSION: 50, OLD: 450}
    rest = reprocess_prompt(DAY, llm="mock", progress=False)
    assert rest.stale == 450 and rest.kept_old == 0
    assert _versions("marts.user_recommendations") == {PROMPT_VERSION: 500}


def test_a_model_no_longer_configured_is_stale(answered: Path) -> None:
    assert reprocess_prompt(DAY, llm="mock", progress=False).stale == 0
    cheap = reprocess_prompt(DAY, llm="mock", progress=False, escalate=False)
    assert cheap.stale > 0  # the escalated answers came from Sonnet


def test_cli_flag_and_batch_refusal(answered: Path, capsys) -> None:
    _age("user_id = 'u000001'")
    assert main(["infer", "--date", str(DAY), "--reprocess", "prompt", "--no-progress"]) == 0
    assert "1 re-asked under" in capsys.readouterr().out
    assert main(["infer", "--date", str(DAY), "--reprocess", "prompt", "--mode", "batch"]) == 2
    assert "realtime mode only" in capsys.readouterr().err
