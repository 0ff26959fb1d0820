"""Batch mode: Message Batches, batch-priced, resumable from the stored batch id."""

# ruff: noqa: F811 (the fixtures imported from tests.decision.conftest are test arguments)

from __future__ import annotations

import re
from datetime import date

import pytest

from sandbox.decision import prepare_features, run_llm_inference
from sandbox.decision.batch import BatchRun, custom_id_for
from sandbox.decision.pricing import load_price_book
from tests.decision.conftest import (  # noqa: F401 (pytest fixtures)
    DAY,
    mart,
    requests_log,
    scalar,
)

BATCHES = "/v1/messages/batches"


def rows_of(sql: str) -> list[tuple]:
    from sandbox.warehouse import connect

    with connect() as con:
        return con.execute(sql).fetchall()


def run(**kwargs):
    return run_llm_inference(DAY, mode="batch", progress=False, **kwargs)


def test_custom_ids_are_readable_and_safe() -> None:
    nonce = "0123456789ab"
    assert custom_id_for(nonce, date(2026, 11, 1), "u0001") == "0123456789ab-20261101-u0001"
    unsafe = custom_id_for(nonce, date(2026, 11, 1), "anna@example.com")
    assert unsafe.startswith("0123456789ab-20261101-h") and "@" not in unsafe
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", unsafe)
    long_id = custom_id_for(nonce, date(2026, 11, 1), "u" * 60)
    assert long_id.startswith(f"{nonce}-20261101-h") and len(long_id) <= 64


def test_batch_mode_does_every_row_at_half_price(mart, requests_log) -> None:
    prepare_features(DAY)
    summary = run()
    assert (summary.done, summary.failed, summary.status) == (40, 0, "ok")
    assert requests_log.count(BATCHES) == 2  # primary, then escalation
    assert len(summary.batch_ids) == 2
    assert requests_log.messages() == []  # no realtime requests
    book = load_price_book()
    ledger = rows_of(
        "select model, input_tokens, output_tokens, cost_usd from decision.llm_calls "
        "where mode = 'batch' and purpose <> 'estimate'"
    )
    for model, tokens_in, tokens_out, cost in ledger:
        price = book.get(model)
        expected = tokens_in * price.input_usd_per_mtok + tokens_out * price.output_usd_per_mtok
        assert cost == pytest.approx(expected / 2e6)
    assert book.batch_discount == 0.5
    escalated = scalar("select count(*) from decision.recommendations_staging where escalated")
    assert summary.escalated == escalated > 0
    # an escalated row's cost covers its primary and its escalation request
    assert (
        scalar(
            "select abs(sum(s.cost_usd) - (select sum(cost_usd) from decision.llm_calls where purpose <> 'estimate')) "
            "from decision.recommendations_staging s"
        )
        < 1e-9
    )
    assert scalar("select count(*) from decision.batch_jobs where status <> 'ingested'") == 0
    again = run()
    assert (again.done, again.skipped, again.requests) == (0, 40, 0)
    assert requests_log.count(BATCHES) == 2


def test_a_rerun_resumes_the_stored_batch_instead_of_paying_again(
    mart, requests_log, monkeypatch
) -> None:
    prepare_features(DAY)
    real_poll = BatchRun._poll

    def crash(self, batch_id, bar):
        raise KeyboardInterrupt  # the process dies while polling

    monkeypatch.setattr(BatchRun, "_poll", crash)
    with pytest.raises(KeyboardInterrupt):
        run()
    stored = scalar(
        "select count(distinct batch_id) from decision.batch_jobs where status = 'in_progress'"
    )
    assert stored == 1 and requests_log.count(BATCHES) == 1
    assert scalar("select count(*) from decision.recommendations_staging") == 0

    monkeypatch.setattr(BatchRun, "_poll", real_poll)
    summary = run()
    assert requests_log.count(BATCHES) == 2  # no second primary batch: only the escalation one
    assert (summary.done, summary.skipped, summary.failed) == (40, 0, 0)
    assert scalar("select count(*) from decision.recommendations_staging") == 40
    assert scalar("select count(*) from decision.llm_calls where purpose = 'primary'") == 40


def test_a_batch_still_running_is_left_for_the_next_run(mart, requests_log) -> None:
    prepare_features(DAY)
    first = run(wait_s=0)
    assert first.status == "waiting" and first.exit_code == 3
    assert first.pending_left == 40 and any("still processing" in n for n in first.notes)
    second = run()
    assert (second.done, second.status) == (40, "ok")
    assert requests_log.count(BATCHES) == 2


def test_realtime_leaves_rows_of_an_open_batch_alone(mart, requests_log) -> None:
    prepare_features(DAY)
    run(wait_s=0)
    summary = run_llm_inference(DAY, progress=False)
    assert summary.done == 0 and requests_log.messages() == []
    assert any("open Message Batch" in n for n in summary.notes)


@pytest.mark.parametrize(
    ("faults", "error_class"),
    [
        ("expired=1", "batch_expired"),
        ("canceled=1", "batch_canceled"),
        ("server_error=1", "batch_api_error"),
        ("overloaded=1", "batch_overloaded_error"),
        ("malformed=1", "invalid_json"),
        ("refusal=1", "refusal"),
    ],
)
def test_batch_results_that_are_not_answers_become_failures(
    mart, monkeypatch, faults, error_class
) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", faults)
    prepare_features(DAY)
    summary = run()
    assert (summary.done, summary.failed) == (0, 40)
    assert summary.failures_by_class == {error_class: 40}
    assert scalar("select count(*) from decision.batch_jobs where status = 'ingested'") == 40


def test_transient_batch_errors_clear_in_the_next_batch(mart, monkeypatch, requests_log) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "server_error=0.3,expired=0.1")
    prepare_features(DAY)
    first = run(escalate=False)
    assert first.failed > 0 and first.done + first.failed == 40
    second = run(escalate=False)
    assert second.skipped == first.done
    assert second.done + second.failed == first.failed
    assert second.done > 0


def test_batch_respects_the_budget(mart) -> None:
    prepare_features(DAY)
    # 40 rows at batch price: ~$0.0024 expected (not refused up front), ~$0.0052 worst case
    summary = run(max_cost_usd=0.003, escalate=False)
    assert summary.status == "budget" and summary.pending_left > 0
    assert summary.cost_usd <= 0.003


def test_rate_limits_do_not_apply_to_batches(mart, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "rate_limit=1")
    prepare_features(DAY)
    assert run(escalate=False).done == 40


def test_escalations_over_budget_become_failure_rows(mart, monkeypatch) -> None:
    real = BatchRun.escalate

    def escalate(self, rows):
        self.budget.limit_usd = self.budget.spent_usd  # the primaries used up the budget
        return real(self, rows)

    monkeypatch.setattr(BatchRun, "escalate", escalate)
    prepare_features(DAY)
    summary = run(max_cost_usd=1.0)
    over = scalar(
        "select count(*) from decision.inference_failures "
        "where error_class = 'escalation_over_budget' and purpose = 'escalation'"
    )
    assert over > 0 and summary.failures_by_class == {"escalation_over_budget": over}
    assert summary.done == 40 - over and summary.status == "budget" and summary.exit_code == 3
    assert any("did not fit the budget for their escalation" in n for n in summary.notes)
    assert (
        scalar(
            "select count(*) from decision.inference_failures where raw_text like '%\"answer\"%'"
        )
        == over
    )  # the primary answer is kept with the failure
