"""prepare -> realtime inference -> write, on the fake, end to end."""

# ruff: noqa: F811 (the fixtures imported from tests.decision.conftest are test arguments)

from __future__ import annotations

import pytest

from sandbox.config import SandboxError
from sandbox.decision import infer, prepare_features, run_llm_inference, write_results
from sandbox.decision.fake import Faults
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import HIGH_STAKES, opaque_user_id
from sandbox.warehouse import connect
from tests.decision.conftest import (  # noqa: F401 (pytest fixtures)
    DAY,
    create_mart,
    mart,
    requests_log,
    scalar,
    table,
)

STAGING = "decision.recommendations_staging"


def run(**kwargs):
    return run_llm_inference(DAY, progress=False, **kwargs)


def rows_by_user(sql: str) -> dict:
    with connect() as con:
        return {r[0]: r[1:] for r in con.execute(sql).fetchall()}


# -- prepare_features -------------------------------------------------------------------------


def test_prepare_needs_the_mart() -> None:
    with pytest.raises(SandboxError, match=r"run `sandbox build --date 2026-11-01` first"):
        prepare_features(DAY)


def test_prepare_refuses_a_mart_built_for_another_date() -> None:
    create_mart(5, as_of=DAY.replace(day=2))
    with pytest.raises(SandboxError, match="holds 2026-11-02, not 2026-11-01"):
        prepare_features(DAY)


def test_prepare_is_idempotent(mart) -> None:
    assert prepare_features(DAY) == 40
    assert prepare_features(str(DAY)) == 40
    assert scalar("select count(*) from decision.inference_inputs") == 40
    assert scalar("select count(distinct input_sha) from decision.inference_inputs") > 1


def test_inference_needs_frozen_inputs(mart) -> None:
    with pytest.raises(SandboxError, match="has no rows for 2026-11-01"):
        run()


# -- realtime inference -----------------------------------------------------------------------


def test_every_row_is_done_and_high_stakes_answers_are_escalated(mart, requests_log) -> None:
    prepare_features(DAY)
    summary = run()
    assert (summary.done, summary.failed, summary.skipped, summary.pending_left) == (40, 0, 0, 0)
    assert summary.status == "ok" and summary.exit_code == 0
    staged = rows_by_user(
        f"select user_id, recommendation_type, escalated, model, cost_usd from {STAGING}"
    )
    assert len(staged) == 40
    for kind, escalated, model, _ in staged.values():
        assert escalated == (kind in HIGH_STAKES)
        book = load_price_book()
        assert model == (book.escalation if escalated else book.primary)
    escalated = sum(1 for v in staged.values() if v[1])
    assert summary.escalated == escalated > 0
    # ledger: one primary request per row, one escalation per escalated row, costs add up
    calls = rows_by_user(
        "select purpose, count(*), sum(cost_usd) from decision.llm_calls "
        "where purpose <> 'estimate' group by purpose"
    )
    assert calls["primary"][0] == 40 and calls["escalation"][0] == escalated
    assert summary.requests == 40 + escalated == len(requests_log.messages())
    assert sum(v[3] for v in staged.values()) == pytest.approx(
        calls["primary"][1] + calls["escalation"][1]
    )
    assert summary.cost_usd == pytest.approx(sum(v[3] for v in staged.values()))
    assert "40 done" in summary.render()
    assert (
        f"cost ${summary.cost_usd:.4f} (simulated: offline fake at list prices" in summary.render()
    )


def test_only_an_offline_cost_is_labelled_simulated() -> None:
    from datetime import date

    from sandbox.decision.summary import InferenceSummary

    def line(llm: str, estimate: float | None) -> str:
        summary = InferenceSummary(date(2026, 11, 1), llm, "realtime", "m", None, "v1", "r",
                                   cost_usd=0.4527, estimated_cost_usd=estimate)  # fmt: skip
        return next(x for x in summary.render().splitlines() if "cost $" in x)

    assert line("mock", None).endswith("cost $0.4527 (simulated: offline fake at list prices)")
    assert line("mock", 0.5).endswith(
        "cost $0.4527 (simulated: offline fake at list prices; estimated $0.5000)"
    )
    assert line("anthropic", None).endswith("cost $0.4527")
    assert line("anthropic", 0.5).endswith("cost $0.4527 (estimated $0.5000)")


def test_a_rerun_sends_zero_requests(mart, requests_log) -> None:
    prepare_features(DAY)
    run()
    before = len(requests_log.entries())
    again = run()
    assert len(requests_log.entries()) == before
    assert (again.done, again.skipped, again.requests, again.cost_usd) == (0, 40, 0, 0.0)


def test_no_escalate_sends_one_request_per_row(mart, requests_log) -> None:
    prepare_features(DAY)
    summary = run(escalate=False)
    assert summary.requests == 40 and summary.escalated == 0
    assert scalar(f"select count(*) from {STAGING} where escalated") == 0


def test_batch_size_limits_the_rows_of_one_run(mart) -> None:
    prepare_features(DAY)
    first = run(batch_size=15)
    assert (first.done, first.pending_left, first.status) == (15, 25, "pending")
    assert first.exit_code == 3 and any("--limit 15" in n for n in first.notes)
    second = run()
    assert (second.done, second.skipped) == (25, 15)


FAULTS = "rate_limit=0.2,overloaded=0.1,server_error=0.1,timeout=0.03,malformed=0.1,out_of_range=0.05,wrong_enum=0.05,max_tokens=0.05,refusal=0.05"


def test_every_fault_kind_ends_as_the_right_row_kind(mart, requests_log, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", FAULTS)
    faults = Faults.parse(FAULTS)
    prepare_features(DAY)
    summary = run()
    expected_failure = {
        "malformed": "invalid_json",
        "out_of_range": "validation_error",
        "wrong_enum": "validation_error",
        "max_tokens": "max_tokens",
        "refusal": "refusal",
    }
    failures = rows_by_user(
        "select user_id, error_class, raw_text from decision.inference_failures"
    )
    staged = rows_by_user(f"select user_id, recommendation_type from {STAGING}")
    seen_transient = set()
    primary = load_price_book().get(load_price_book().primary).id
    for user in mart:
        uid = user["user_id"]
        answer_fault = faults.pick("answer", opaque_user_id(uid))
        if answer_fault:  # permanent: a failure row with the raw text, never a result row
            assert uid not in staged
            assert failures[uid][0] == expected_failure[answer_fault]
            assert failures[uid][1] is not None
        else:  # clean or transient: the SDK retried, the row is done
            assert uid in staged and uid not in failures
        if faults.pick("transient", opaque_user_id(uid), primary):
            seen_transient.add(uid)
    assert summary.failed == len(failures) > 0 and summary.done == len(staged)
    assert summary.status == "partial" and summary.exit_code == 3
    # transient faults cost a retry: the ledger counts attempts
    retried = scalar(
        "select count(*) from decision.llm_calls where attempts = 2 and purpose = 'primary'"
    )
    assert retried == len(seen_transient) > 0
    assert summary.done + summary.failed == 40


def test_rerun_retries_failed_rows_only(mart, requests_log, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "refusal=0.2")
    prepare_features(DAY)
    first = run(escalate=False)
    assert first.failed > 0
    sent = len(requests_log.messages())
    second = run(escalate=False)
    assert second.skipped == first.done
    assert len(requests_log.messages()) - sent == first.failed  # only the failed rows again
    assert second.failed == first.failed  # a permanent fault does not clear


def test_transient_errors_after_retries_are_recorded_and_clear_later(mart, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "overloaded=0.3")
    prepare_features(DAY)
    first = run(max_retries=0, escalate=False)
    assert first.failures_by_class == {"OverloadedError": first.failed} and first.failed > 0
    assert scalar("select count(*) from decision.llm_calls where status = 'error'") == first.failed
    second = run(escalate=False)
    assert (second.done, second.failed) == (first.failed, 0)


def test_a_bad_key_stops_the_run_before_any_message(mart, requests_log, monkeypatch) -> None:
    prepare_features(DAY)
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "auth=1")
    with pytest.raises(
        SandboxError, match="stopped before sending anything.*401.*ANTHROPIC_API_KEY"
    ):
        run(workers=4)
    assert requests_log.messages() == []  # count_tokens got the 401 first


def test_a_400_stops_the_run_at_once(mart, requests_log, monkeypatch) -> None:
    prepare_features(DAY)
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "bad_request=1")
    with pytest.raises(SandboxError, match="stopped after 0 rows.*400 invalid_request_error"):
        run(workers=4)
    assert 1 <= len(requests_log.messages()) <= 2 * 4 - 1  # the first requests in flight only
    assert scalar("select count(*) from decision.inference_failures") == 0


def test_a_401_mid_run_stops_within_the_requests_in_flight(mart, requests_log, monkeypatch) -> None:
    prepare_features(DAY)
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "auth=0.15,seed=3")
    with pytest.raises(SandboxError, match="401 authentication_error.*ANTHROPIC_API_KEY") as err:
        run(workers=4, escalate=False)
    assert "stopped after" in str(err.value)
    sent = requests_log.messages()
    first_401 = next(i for i, e in enumerate(sent) if e["status"] == 401)
    # after the first 401 came back: the 3 other rows in flight, plus at most 4 the main
    # thread submitted for rows that finished before it read the 401; nothing after that
    assert len(sent) - first_401 - 1 <= 2 * 4 - 1
    assert len(sent) < 40


def test_an_unknown_model_is_a_clear_error(mart) -> None:
    prepare_features(DAY)
    with pytest.raises(SandboxError, match="no price in models.json"):
        run(model="claude-imaginary-9")


def test_anthropic_needs_a_key(mart) -> None:
    prepare_features(DAY)
    with pytest.raises(
        SandboxError, match="ANTHROPIC_API_KEY is not set: set it, or run with --llm mock"
    ):
        run(llm="anthropic")


def test_unknown_llm(monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_LLM", "openai")
    with pytest.raises(SandboxError, match="unknown LLM 'openai'"):
        run()


# -- budget -----------------------------------------------------------------------------------


def test_a_run_over_budget_is_refused_before_sending(mart, requests_log) -> None:
    prepare_features(DAY)
    with pytest.raises(SandboxError, match="exceeds --max-cost-usd"):
        run(max_cost_usd=0.001)
    assert requests_log.messages() == []


def test_the_budget_stops_submitting_and_reports_what_is_left(mart, monkeypatch) -> None:
    prepare_features(DAY)
    # above the expected cost (so not refused up front), below the worst case of every row
    monkeypatch.setattr("sandbox.decision.steps.DEFAULT_ESCALATION_SHARE", 0.0)
    summary = run(max_cost_usd=0.05, escalate=True, workers=4)
    assert summary.status == "budget" and summary.exit_code == 3
    assert summary.pending_left > 0 and summary.done + summary.pending_left == 40
    assert summary.cost_usd <= 0.05
    assert any("stopped submitting" in note for note in summary.notes)


# -- write_results ----------------------------------------------------------------------------


def test_write_results_is_idempotent(mart) -> None:
    prepare_features(DAY)
    run()
    assert write_results(DAY) == 40
    first = table("marts.user_recommendations")
    assert write_results(DAY) == 40
    assert table("marts.user_recommendations") == first
    staged = {r[1]: r for r in table(STAGING)}
    for row in first:
        assert row[2] == staged[row[0]][2]  # recommendation_type


def test_infer_runs_prepare_inference_write(mart) -> None:
    summary = infer(DAY, progress=False)
    assert summary.done == 40
    assert scalar("select count(*) from marts.user_recommendations") == 40
    again = infer(DAY, progress=False)
    assert (again.done, again.skipped, again.requests) == (0, 40, 0)


def test_a_changed_input_is_redone(mart, requests_log) -> None:
    infer(DAY, progress=False)
    with connect() as con:
        con.execute(
            "update marts.fct_user_features_for_ai set user_summary_for_llm = "
            "'User has been on the pro plan for 400 days. No activity recorded since signing up.' "
            "where user_id = 'u0003'"
        )
    sent = len(requests_log.messages())
    summary = infer(DAY, progress=False)
    assert (summary.done, summary.skipped) == (1, 39)
    assert len(requests_log.messages()) - sent in (1, 2)  # the row, and maybe its escalation
    assert (
        scalar("select recommendation_type from marts.user_recommendations where user_id = 'u0003'")
        == "churn_risk"
    )


# -- escalation, stopping, re-sends, the dead letter ----------------------------------------


def _client_failing_escalations(status: int = 529):
    """The mock client, except that every request to the escalation model gets ``status``."""
    import anthropic
    import httpx2

    from sandbox.decision.clients import mock_state_dir
    from sandbox.decision.fake import FakeMessagesAPI

    fake = FakeMessagesAPI.from_env(state_dir=mock_state_dir())
    escalation = load_price_book().escalation

    def handle(request):
        if request.url.path.endswith("/v1/messages") and escalation.encode() in request.content:
            body = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
            return httpx2.Response(status, json=body)
        return fake.handle(request)

    return anthropic.Anthropic(
        api_key="mock-key-offline",
        http_client=anthropic.DefaultHttpxClient(transport=httpx2.MockTransport(handle)),
        max_retries=0,
    )


def test_a_failed_escalation_keeps_the_primary_answer_and_never_buys_it_again(
    mart, requests_log, monkeypatch
) -> None:
    from sandbox.decision.clients import make_client

    monkeypatch.setattr(
        "sandbox.decision.steps.make_client", lambda *a, **k: _client_failing_escalations()
    )
    prepare_features(DAY)
    summary = run()
    book = load_price_book()
    kept = rows_by_user(
        f"select user_id, model, escalated, escalation_status, recommendation_type from {STAGING}"
    )
    assert summary.done == 40 and summary.failed == 0 and summary.status == "ok"
    high = {u for u, v in kept.items() if v[3] in HIGH_STAKES}
    assert high, "the drill needs high-stakes rows"
    for user in high:
        assert kept[user][:3] == (book.primary, False, "escalation_failed")
    assert scalar("select count(*) from decision.llm_calls where purpose = 'escalation' "
                  "and status = 'error'") == len(high)  # fmt: skip
    monkeypatch.setattr("sandbox.decision.steps.make_client", make_client)
    sent = len(requests_log.messages())
    again = run()
    assert (again.done, again.requests) == (0, 0)
    assert len(requests_log.messages()) == sent  # the primary answers are not bought again


def test_a_stop_event_ends_the_run_interrupted_keeping_what_came_back(mart, monkeypatch) -> None:
    import threading

    from sandbox.decision import realtime

    prepare_features(DAY)
    stop = threading.Event()
    real = realtime.infer_row
    seen = []

    def infer_row(*args):
        seen.append(1)
        if len(seen) == 5:
            stop.set()  # e.g. SIGTERM arrives while 5 rows are in flight
        return real(*args)

    monkeypatch.setattr(realtime, "infer_row", infer_row)
    summary = run(workers=2, escalate=False, stop=stop)
    assert summary.status == "interrupted" and summary.exit_code == 130
    assert 5 <= summary.done < 40 and summary.pending_left == 40 - summary.done
    assert scalar(f"select count(*) from {STAGING}") == summary.done
    assert scalar("select count(*) from decision.llm_calls where purpose = 'primary'") == (
        summary.done
    )
    summary.interrupted_by = "SIGTERM"
    assert summary.exit_code == 143


def test_a_keyboard_interrupt_keeps_the_rows_in_flight(mart, monkeypatch) -> None:
    from tqdm.auto import tqdm

    from sandbox.decision import realtime

    prepare_features(DAY)
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "200")  # 40 rows take seconds, not 0.5 s

    class CtrlC(tqdm):  # ^C in the calling thread once rows finish, as a notebook's interrupt
        def update(self, n=1):
            if n:
                raise KeyboardInterrupt
            return super().update(n)

    monkeypatch.setattr(realtime, "tqdm", CtrlC)
    summary = run(workers=4, escalate=False)
    assert summary.status == "interrupted" and summary.interrupted_by == "KeyboardInterrupt"
    staged = scalar(f"select count(*) from {STAGING}")
    assert 0 < staged == summary.done < len(mart)
    assert scalar("select count(*) from decision.llm_calls where purpose = 'primary'") == staged


def test_a_keyboard_interrupt_while_workers_start_is_not_masked(mart, monkeypatch) -> None:
    import threading

    from sandbox.decision import realtime

    prepare_features(DAY)
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "50")
    real_start, starts = threading.Thread.start, []

    def start(thread) -> None:  # ^C after the writer and one worker started, before the rest
        if thread.name.startswith("sandbox-"):  # not tqdm's monitor, which the first bar starts
            starts.append(thread.name)
            if len(starts) == 3:
                raise KeyboardInterrupt
        real_start(thread)

    monkeypatch.setattr(realtime.threading.Thread, "start", start)
    with pytest.raises(KeyboardInterrupt):
        run(workers=4, escalate=False)
    monkeypatch.setattr(realtime.threading.Thread, "start", real_start)
    assert starts[:2] == ["sandbox-infer-writer", "sandbox-infer_0"]
    # the one worker that started finished its rows and they were committed, none twice
    staged = scalar(f"select count(*) from {STAGING}")
    assert staged == scalar("select count(*) from decision.llm_calls where purpose = 'primary'")


def test_resent_requests_are_counted_with_their_reason_and_failures_resolve(
    mart, monkeypatch
) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "overloaded=0.3")
    prepare_features(DAY)
    first = run(max_retries=0, escalate=False)
    assert first.failed > 0 and first.failures_open == first.failed
    second = run(escalate=False)
    assert second.resent == first.failed
    assert any("transient error (OverloadedError)" in n for n in second.notes)
    assert "re-sent" in second.render()
    # the later successes resolved the dead-letter rows: nothing is still failing
    assert second.failures_open == 0
    assert scalar("select count(*) from decision.inference_failures where resolved_at is null") == 0
    assert scalar("select count(*) from decision.inference_failures") == first.failed


@pytest.mark.parametrize("budget", [float("nan"), float("inf"), 0.0, -1.0], ids=str)
def test_a_budget_that_is_not_a_positive_number_is_refused(mart, budget, requests_log) -> None:
    prepare_features(DAY)
    with pytest.raises(SandboxError, match="positive number of dollars"):
        run(max_cost_usd=budget)
    assert requests_log.entries() == []


def test_a_journal_left_by_a_killed_run_is_committed_first(mart, requests_log) -> None:
    """What a run journaled but never committed is committed by the next one, not re-bought."""
    from sandbox.decision import journal, store

    prepare_features(DAY)
    real_commit = store.commit

    def commit(**rows):
        if any(c["purpose"] == "primary" for c in rows.get("calls", ())):
            raise OSError("the process died before this commit")
        return real_commit(**rows)

    try:
        store.commit = commit
        with pytest.raises(SandboxError, match="kept in the journal"):
            run(escalate=False)
    finally:
        store.commit = real_commit
    assert journal.pending_files(), "the answers were journaled"
    assert scalar(f"select count(*) from {STAGING}") == 0
    first = requests_log.messages()
    assert 0 < len(first) <= 40  # how many were sent before the failed commit stopped it varies
    summary = run(escalate=False)
    second = requests_log.messages()[len(first) :]
    assert not {e["user"] for e in first} & {e["user"] for e in second}  # none asked twice
    assert summary.recovered >= len(first) and summary.skipped == len(first)
    assert summary.done == 40 - len(first) == summary.requests
    assert scalar(f"select count(*) from {STAGING}") == 40
    assert scalar("select count(*) from decision.llm_calls where purpose = 'primary'") == 40
    assert not journal.pending_files() and not journal.journal_dir().exists()
