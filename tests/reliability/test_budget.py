"""Budget: ``sandbox infer --max-cost-usd 0.01`` on runs that would cost more.

The spend is recomputed here from the requests the fake answered (its token counts and the
price file), not taken from the engine's own ledger, so the drill checks the ledger too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cli import main
from sandbox.decision.fake import FakeMessagesAPI
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import build_params, opaque_user_id
from tests.decision.conftest import DAY, create_mart
from tests.reliability.harness import Requests, scalar

BUDGET = 0.01


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Requests:
    path = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(path))
    return Requests(path)


def infer(capsys, *extra: str) -> tuple[int, str, str]:
    code = main(["infer", "--date", str(DAY), "--no-progress", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def real_spend(log: Requests, users: list[dict], entries: list[dict] | None = None) -> float:
    """USD of every answered ``/v1/messages`` request, from the fake's own token counts."""
    book, fake = load_price_book(), FakeMessagesAPI()
    summary = {
        opaque_user_id(u["user_id"]): (u["user_id"], u["user_summary_for_llm"]) for u in users
    }
    total = 0.0
    for e in log.messages(entries):
        if e["status"] != 200:
            continue
        uid, text = summary[e["user"]]
        params = build_params(book.get(e["model"]), uid, text)
        usage = fake.message(params, e["user"])["usage"]
        total += book.get(e["model"]).cost(usage["input_tokens"], usage["output_tokens"])
    return total


def test_a_run_expected_to_cost_more_is_refused_before_any_message(log, capsys) -> None:
    create_mart(40)
    code, out, err = infer(capsys, "--max-cost-usd", str(BUDGET))
    assert code == 2
    assert "exceeds --max-cost-usd 0.01" in err and "estimated cost $" in err
    assert log.messages() == []  # only the free token counts went out
    assert [e["path"] for e in log.entries()] == ["/v1/messages/count_tokens"] * 2
    assert scalar("select coalesce(sum(cost_usd), 0) from decision.llm_calls") == 0


@pytest.mark.parametrize("workers", [1, 10])
def test_a_run_that_fits_the_estimate_but_not_the_worst_case_stops_before_the_limit(
    workers: int, log, capsys
) -> None:
    # 6 rows: expected ~$0.0050 (so the run is not refused up front under $0.0075), but they
    # really cost ~$0.0089 and their worst case is ~$0.033: the budget has to stop the submitting
    users = create_mart(6)
    budget = 0.0075
    code, out, err = infer(capsys, "--max-cost-usd", str(budget), "--workers", str(workers))
    assert code == 3, out + err
    assert "status budget" in out and "left pending" in out
    spent = real_spend(log, users)
    assert 0 < spent <= budget
    ledger = scalar("select sum(cost_usd) from decision.llm_calls where purpose <> 'estimate'")
    assert ledger == pytest.approx(spent)  # the ledger holds every request that cost money
    # the same run without a budget: it would have cost more than the budget
    sent = len(log.entries())
    code, out, err = infer(capsys)
    assert code == 0, out + err
    assert spent + real_spend(log, users, log.entries()[sent:]) > budget


def test_more_workers_do_not_leave_budget_unused(log, capsys, tmp_path, monkeypatch) -> None:
    done = {}
    for workers in (1, 4):
        monkeypatch.setenv("SANDBOX_WAREHOUSE", str(tmp_path / f"w{workers}" / "sandbox.duckdb"))
        create_mart(8)  # ~$0.0091 of answers, ~$0.0055 worst case a row: a budget run
        code, out, err = infer(capsys, "--max-cost-usd", str(BUDGET), "--workers", str(workers))
        assert code == 3, out + err
        done[workers] = scalar("select count(*) from marts.user_recommendations")
    assert done[4] == done[1] > 1
