"""The task callables' control-plane policy, with the planes replaced by stand-ins (fast)."""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import types
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from sandbox.config import SandboxError
from sandbox.control import runs, tasks
from sandbox.control.cli import dates_from
from sandbox.control.pipeline import RunReport, TaskState, date_range, task_frame
from sandbox.decision.tables import ensure_tables
from sandbox.warehouse import WarehouseBusy, connect
from tests.control.conftest import airflow_home_session_fixture  # noqa: F401

DAY = date(2026, 11, 1)


@dataclass(frozen=True)
class Failure:
    node: str = "test.three_plane_sandbox.unique_stg_users_user_id"
    kind: str = "data test"
    model: str = "staging.stg_users"
    column: str = "user_id"
    test: str = "unique"
    failing_rows: int = 1
    message: str = "Got 1 result, configured to fail if != 0"

    def describe(self) -> str:
        return "unique on staging.stg_users.user_id: 1 failing row"


class GateFailed(SandboxError):
    def __init__(self) -> None:
        super().__init__("the quality gate failed")
        self.failures = [Failure()]


@pytest.fixture
def fail_exception(airflow_home_session):
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException


@pytest.fixture
def planes(monkeypatch):
    """Stand-in ``sandbox.data`` / ``sandbox.decision`` modules recording their calls."""
    calls: list[tuple] = []
    data = types.SimpleNamespace(GateFailed=GateFailed, build=lambda d: calls.append(("build", d)))
    decision = types.SimpleNamespace(
        prepare_features=lambda d: calls.append(("prepare", d)) or 5,
        run_llm_inference=lambda d, **kw: calls.append(("infer", d, kw)) or {"requests": 5},
        write_results=lambda d: calls.append(("write", d)) or 5,
    )
    monkeypatch.setitem(sys.modules, "sandbox.data", data)
    monkeypatch.setitem(sys.modules, "sandbox.decision", decision)
    return types.SimpleNamespace(data=data, decision=decision, calls=calls)


def test_gate_failure_fails_dbt_run_without_retries(planes, fail_exception) -> None:
    def failing_build(d):
        raise GateFailed()

    planes.data.build = failing_build
    with pytest.raises(fail_exception, match="quality gate failed"):
        tasks.dbt_run("2026-11-01")


def test_gate_failure_records_name_the_failing_tests() -> None:
    [record] = tasks.gate_failure_records(GateFailed())
    assert record["test"] == "unique" and record["failing_rows"] == 1
    assert record["description"] == "unique on staging.stg_users.user_id: 1 failing row"
    assert tasks.gate_failure_records(SandboxError("boom\nmore")) == [{"description": "boom"}]


def test_expected_errors_skip_retries_but_a_busy_warehouse_retries(planes, fail_exception) -> None:
    def no_key(d, **kw):
        raise SandboxError("ANTHROPIC_API_KEY is not set: set it, or run with --llm mock")

    planes.decision.run_llm_inference = no_key
    with pytest.raises(fail_exception, match="ANTHROPIC_API_KEY"):
        tasks.run_llm_inference("2026-11-01")

    def busy(d):
        raise WarehouseBusy("warehouse is in use by PID 1")

    planes.decision.write_results = busy
    with pytest.raises(WarehouseBusy):  # Airflow retries it
        tasks.write_results("2026-11-01")

    def crash(d):
        raise RuntimeError("worker lost")

    planes.decision.prepare_features = crash
    with pytest.raises(RuntimeError):  # so does the unexpected
        tasks.prepare_features("2026-11-01")


def test_tasks_pass_the_logical_date_and_params(planes, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_LLM", "anthropic")
    assert tasks.prepare_features("2026-11-01") == 5
    assert tasks.run_llm_inference("2026-11-01", model="m", batch_size=7) == {"requests": 5}
    assert tasks.write_results("2026-11-01") == 5
    assert planes.calls == [
        ("prepare", DAY),
        (
            "infer",
            DAY,
            {
                "llm": "anthropic",
                "model": "m",
                "mode": "realtime",
                "progress": False,
                "batch_size": 7,
                "max_cost_usd": None,
                "stop": tasks.STOP,
            },
        ),
        ("write", DAY),
    ]
    tasks.run_llm_inference("2026-11-01", llm="mock")
    assert planes.calls[-1][2]["llm"] == "mock"  # the DAG param wins over SANDBOX_LLM


class FakeTI:
    def __init__(self, task_id: str, xcoms: dict) -> None:
        self.task_id = task_id
        self.xcoms = xcoms
        self.pushed: dict = {}
        self.task = types.SimpleNamespace()

    def xcom_pull(self, task_ids: str, key: str = "return_value"):
        return self.xcoms.get(task_ids if key == "return_value" else (task_ids, key))

    def xcom_push(self, key: str, value) -> None:
        self.pushed[key] = value


def _runs() -> list[tuple]:
    with connect(read_only=True) as con:
        return con.execute(
            "select dag_run_id, status, rows_written, failures, llm_requests, cost_usd,"
            " rows_done, rows_pending from ops.pipeline_runs order by dag_run_id"
        ).fetchall()


def _summary(status: str = "ok", **counts) -> dict:
    base = {"status": status, "done": 10, "failed": 0, "pending_left": 0, "requests": 12}
    return {**base, "cost_usd": 0.5, **counts}


def _context(run_id: str, task_id: str, xcoms: dict, exception=None, started=None) -> dict:
    return {"ds": "2026-11-01", "run_id": run_id, "ti": FakeTI(task_id, xcoms),
            "exception": exception,
            "dag_run": types.SimpleNamespace(start_date=started)}  # fmt: skip


def _ledger(requests: int, cost: float, at, staged: int = 0, first_user: int = 0) -> None:
    """``requests`` ledger rows of DAY costing ``cost`` in all, and ``staged`` answers, at ``at``."""
    with connect() as con:
        ensure_tables(con, "decision.llm_calls", "decision.recommendations_staging")
        con.execute(
            "insert into decision.llm_calls (call_id, execution_date, user_id, run_id, model,"
            " mode, purpose, status, attempts, input_tokens, output_tokens, cost_usd,"
            " prompt_version, called_at) select 'c' || (i + ?), ?, 'u' || (i + ?), 'r', 'm',"
            " 'realtime', 'primary', 'ok', 1, 1, 1, ?, 'pv', ? from range(?) t(i)",
            [first_user, DAY, first_user, cost / max(requests, 1), at, requests],
        )
        con.execute(
            "insert into decision.recommendations_staging (execution_date, user_id,"
            " recommendation_type, recommendation_text, confidence_score, reasoning, model,"
            " prompt_version, mode, escalated, input_tokens, output_tokens, cost_usd, input_sha,"
            " run_id, created_at) select ?, 'u' || (i + ?), 'churn_risk', 't', 0.5, 'w', 'm',"
            " 'pv', 'realtime', false, 1, 1, 0.0, 'sha', 'r', ? from range(?) t(i)",
            [DAY, first_user, at, staged],
        )


def test_each_status_is_recorded_with_the_ledger_counts_in_utc() -> None:
    from datetime import UTC, datetime, timedelta

    before = datetime.now(UTC).replace(tzinfo=None)
    started = before - timedelta(minutes=5)
    _ledger(12, 0.5, before, staged=10)
    later = before + timedelta(hours=1)  # runs that started after every ledger row: 0 spent
    ok = {"run_llm_inference": _summary(), ("write_results", "written"): 10}
    assert runs.record_pipeline_run(
        _context("r1", "write_results", ok, started=started), succeeded=True
    ) == "success"
    partial = {
        "run_llm_inference": _summary("partial", done=8, failed=2),
        ("write_results", "written"): 8,
    }
    failed_write = _context("r2", "write_results", partial, SandboxError("run ended partial"),
                            started=started)  # fmt: skip
    assert runs.record_pipeline_run(failed_write, succeeded=False) == "partial"
    budget = {
        "run_llm_inference": _summary("budget", done=4, pending_left=6),
        ("write_results", "written"): 4,
    }
    budget_run = _context("r3", "write_results", budget, started=started)
    assert runs.record_pipeline_run(budget_run, succeeded=False) == "budget"
    blocked = _context("r4", "wait_for_dbt_completion", {}, started=later)
    assert runs.record_pipeline_run(blocked, succeeded=False) == "gate_blocked"
    crashed = _context("r5", "run_llm_inference", {}, RuntimeError("worker lost"), started=later)
    assert runs.record_pipeline_run(crashed, succeeded=False) == "failed"
    nothing = {"run_llm_inference": _summary(done=0), ("write_results", "written"): 0}
    nothing_run = _context("r6", "write_results", nothing, started=later)
    assert runs.record_pipeline_run(nothing_run, succeeded=False) == "failed"
    runs.record_pipeline_run(_context("r1", "write_results", ok, started=started),
                              succeeded=True)  # same row  # fmt: skip
    assert _runs() == [
        ("r1", "success", 10, 0, 12, 0.5, 10, 0),
        ("r2", "partial", 8, 2, 12, 0.5, 10, 0),
        ("r3", "budget", 4, 0, 12, 0.5, 10, 6),
        ("r4", "gate_blocked", 0, 0, 0, 0.0, 0, 0),
        ("r5", "failed", 0, 0, 0, 0.0, 0, 0),
        ("r6", "failed", 0, 0, 0, 0.0, 0, 0),
    ]
    with connect(read_only=True) as con:
        stamps = con.execute("select min(recorded_at), max(recorded_at) from ops.pipeline_runs")
        first, last = stamps.fetchone()
        details = dict(con.execute("select dag_run_id, detail from ops.pipeline_runs").fetchall())
    after = datetime.now(UTC).replace(tzinfo=None)
    assert before <= first <= last <= after  # UTC, like every other timestamp
    assert details["r5"] == "run_llm_inference: worker lost"
    assert details["r2"] == "2 rows failed (decision.inference_failures)"
    assert details["r6"] == "no recommendation was published for the date"


def test_the_row_sums_every_attempt_of_the_run_not_the_last_attempts_xcom() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    _ledger(7, 0.7, (now - timedelta(hours=2)).replace(tzinfo=None), staged=7)  # a run before
    _ledger(20, 2.0, (now - timedelta(minutes=9)).replace(tzinfo=None), staged=15, first_user=7)
    _ledger(5, 0.5, (now - timedelta(minutes=1)).replace(tzinfo=None), staged=5, first_user=27)
    last_attempt = {"run_llm_inference": _summary(done=5, requests=5, cost_usd=0.5),
                    ("write_results", "written"): 27}  # fmt: skip
    context = _context("r1", "write_results", last_attempt, started=now - timedelta(minutes=10))
    assert runs.record_pipeline_run(context, succeeded=True, written=27) == "success"
    with connect(read_only=True) as con:
        row = con.execute(
            "select llm_requests, round(cost_usd, 6), rows_done, rows_resumed, rows_written"
            " from ops.pipeline_runs"
        ).fetchone()
    # both attempts of the run (20 + 5 requests), not the earlier run of the date (7), which
    # left 7 answers the run resumed from
    assert row == (25, 2.5, 20, 7, 27)


@pytest.mark.parametrize(
    ("summary", "written", "status"),
    [
        (_summary(), 10, "success"),
        (_summary("partial", failed=101), 399, "partial"),
        (_summary("budget", pending_left=3), 7, "budget"),
        (_summary("pending", pending_left=3), 7, "partial"),
        (_summary("waiting"), 0, "failed"),
        (_summary(), 0, "failed"),
        (_summary(inputs=500), 499, "partial"),  # a row the tallies lost is still missing
        (_summary(inputs=500, skipped=100), 500, "success"),
    ],
)
def test_run_outcome_is_success_only_when_every_row_is_published(summary, written, status):
    assert runs.run_outcome(summary, written)[0] == status


def test_an_old_warehouse_gets_the_new_columns() -> None:
    with connect() as con:
        con.execute("create schema ops")
        con.execute(
            "create table ops.pipeline_runs (execution_date date not null, dag_run_id varchar"
            " not null, status varchar not null, rows_written bigint not null, failures bigint"
            " not null, llm_requests bigint not null, cost_usd double not null, recorded_at"
            " timestamp not null, primary key (execution_date, dag_run_id))"
        )
    ok = {"run_llm_inference": _summary(), ("write_results", "written"): 10}
    runs.record_pipeline_run(_context("r1", "write_results", ok), succeeded=True)
    assert _runs() == [("r1", "success", 10, 0, 0, 0.0, 0, 0)]


def _drift(run_id: str) -> tuple:
    with connect(read_only=True) as con:
        return con.execute(
            "select status, drift_status, drift_detail from ops.pipeline_runs where dag_run_id = ?",
            [run_id],
        ).fetchone()


def _history(last: date, churn_share: float | None = None) -> None:
    """Three ordinary days before ``last``, then ``last``: ordinary, or with ``churn_share``
    of its users in churn_risk."""
    from datetime import timedelta

    from tests.decision.test_drift import NORMAL, add_day

    for back in (3, 2, 1):
        add_day(last - timedelta(days=back), NORMAL)
    if churn_share is None:
        add_day(last, NORMAL)
        return
    rest = (1 - churn_share) / 3
    add_day(last, {"churn_risk": (churn_share, 0.9), "feature_discovery": (rest, 0.6),
                   "re_engagement": (rest, 0.7), "upgrade_prompt": (rest, 0.75)})  # fmt: skip


def test_drift_flags_the_run_keeps_its_status_and_fails_the_watch(in_task, fail_exception):
    _history(DAY, churn_share=0.95)  # the stale-data day: nearly everyone looks gone
    ok = {"run_llm_inference": _summary(), ("write_results", "written"): 10}
    runs.record_pipeline_run(_context("r1", "write_results", ok), succeeded=True)
    with pytest.raises(fail_exception, match=r"drift watch: 2026-11-01: drift against .*churn_risk"):
        tasks.check_drift("2026-11-01", "r1")
    record = in_task.pushed["drift"]
    assert record["status"] == "drift" and record["type_mix"]["churn_risk"] > 0.9
    assert "drift watch" in in_task.pushed["error"]  # what sandbox run and the UI show
    status, drift, detail = _drift("r1")
    assert (status, drift) == ("success", "drift")  # the rows' status stands, the run is flagged
    assert detail == record["message"] and "kept" in detail
    # the watch's failure callback keeps the row's status
    failed = _context("r1", "check_drift", {("check_drift", "drift"): record},
                      SandboxError("drift watch: ..."))  # fmt: skip
    assert runs.record_pipeline_run(failed, succeeded=False) == "success"
    assert _drift("r1")[:2] == ("success", "drift")
    # a later write of the row (a callback that ran after the watch) keeps the verdict
    runs.record_pipeline_run(_context("r1", "write_results", ok), succeeded=True)
    assert _drift("r1")[:2] == ("success", "drift")


def test_a_verdict_before_the_row_exists_is_written_with_the_row(in_task) -> None:
    _history(DAY)  # an ordinary day
    record = tasks.check_drift("2026-11-01", "r2")  # the row is not there yet: no error
    assert record["status"] == "ok" and in_task.pushed["drift"] == record
    xcoms = {"run_llm_inference": _summary(), ("write_results", "written"): 10,
             ("check_drift", "drift"): record}  # fmt: skip
    runs.record_pipeline_run(_context("r2", "write_results", xcoms), succeeded=True)
    assert _drift("r2") == ("success", "ok", record["message"])


def test_a_watch_that_cannot_judge_says_so_in_the_row(in_task) -> None:
    ok = {"run_llm_inference": _summary(), ("write_results", "written"): 10}
    runs.record_pipeline_run(_context("r3", "write_results", ok), succeeded=True)
    assert tasks.check_drift("2026-11-01", "r3")["status"] == "insufficient_history"
    assert _drift("r3")[1] == "insufficient_history"
    broken = _context("r4", "write_results", ok)
    runs.record_pipeline_run(broken, succeeded=True)
    crashed = _context("r4", "check_drift", {}, SandboxError("cannot read the drift thresholds"))
    assert runs.record_pipeline_run(crashed, succeeded=False) == "success"
    assert _drift("r4") == (
        "success", "error", "the drift watch did not run: cannot read the drift thresholds"
    )  # fmt: skip


@pytest.fixture
def in_task(monkeypatch, airflow_home_session):
    """Make ``get_current_context()`` return a fake task instance (as inside a running task)."""
    import airflow.sdk

    ti = FakeTI("run_llm_inference", {})
    context = {"ti": ti, "ds": "2026-11-01", "run_id": "in-task",
               "dag_run": types.SimpleNamespace(start_date=None)}  # fmt: skip
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: context)
    tasks.STOP.clear()
    yield ti
    tasks.STOP.clear()


def test_write_results_publishes_then_fails_a_partial_run(planes, in_task, fail_exception):
    in_task.task_id = "write_results"
    in_task.xcoms["run_llm_inference"] = _summary("partial", done=3, failed=2)
    with pytest.raises(fail_exception, match="run ended partial: 2 rows failed.*5 rows published"):
        tasks.write_results("2026-11-01")
    assert planes.calls == [("write", DAY)]  # published first
    assert in_task.pushed["written"] == 5
    in_task.xcoms["run_llm_inference"] = _summary()
    assert tasks.write_results("2026-11-01") == 5
    # the success row is written by the task itself: a failure to write fails the task
    assert [r[:3] for r in _runs()] == [("in-task", "success", 5)]


def test_an_unreachable_api_fails_after_the_probe_without_retries(planes, in_task, fail_exception):
    def refused(d, *, batch_size=None, **kw):
        planes.calls.append(("infer", batch_size))
        failed = min(batch_size or 500, 500)
        return {"status": "partial", "done": 0, "failed": failed, "requests": failed,
                "failures_by_class": {"APIConnectionError": failed}}  # fmt: skip

    planes.decision.run_llm_inference = refused
    with pytest.raises(fail_exception, match=r"http://127.0.0.1:9 was not reached: all 10 req"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
            tasks.run_llm_inference("2026-11-01", llm="anthropic")
    assert planes.calls == [("infer", tasks.PROBE_ROWS)]  # the other rows were never tried
    assert in_task.pushed["summary"]["failed"] == tasks.PROBE_ROWS
    assert "APIConnectionError" in in_task.pushed["error"]


def test_the_probe_then_the_rest_add_up(planes, in_task) -> None:
    def answers(d, *, batch_size=None, max_cost_usd=None, **kw):
        planes.calls.append(("infer", batch_size, max_cost_usd))
        done = min(batch_size or 490, 490)
        return {"status": "ok", "done": done, "failed": 0, "requests": done, "cost_usd": 0.25}

    planes.decision.run_llm_inference = answers
    summary = tasks.run_llm_inference("2026-11-01", llm="anthropic", max_cost_usd=2)
    assert planes.calls == [("infer", 10, 2.0), ("infer", None, 1.75)]  # one budget for both
    assert (summary["done"], summary["requests"], summary["cost_usd"]) == (500, 500, 0.5)


def test_on_kill_stops_inference_and_fails_the_task(planes, in_task, fail_exception) -> None:
    seen = {}

    def stoppable(d, *, stop=None, **kw):
        seen["stop"] = stop
        in_task.task.on_kill()  # what the task runner calls on SIGTERM
        assert stop.is_set()
        return {"status": "interrupted", "done": 3, "failed": 0, "pending_left": 7}

    planes.decision.run_llm_inference = stoppable
    with pytest.raises(fail_exception, match="stopped on request: 3 answers of this run kept"):
        tasks.run_llm_inference("2026-11-01")
    assert seen["stop"] is tasks.STOP
    assert not hasattr(in_task.task, "on_kill")  # the hook does not outlive the task


def test_every_call_of_the_decision_plane_gets_the_stop_event(planes, in_task, monkeypatch):
    seen = []

    def record(d, *, stop, **kw):  # stop is required: a call without it fails here
        seen.append(stop)
        return {"status": "waiting" if kw.get("mode") == "batch" else "ok", "done": 1}

    planes.decision.run_llm_inference = record
    tasks.run_llm_inference("2026-11-01")
    tasks.run_llm_inference("2026-11-01", llm="anthropic")  # the probe and the rest
    tasks.run_llm_inference("2026-11-01", mode="batch")
    assert seen == [tasks.STOP] * 4


def test_budget_and_mode_come_from_params_else_the_environment(
    planes, monkeypatch, fail_exception
) -> None:
    def settings(max_cost_usd=None, mode=None) -> tuple:
        tasks.run_llm_inference("2026-11-01", max_cost_usd=max_cost_usd, mode=mode)
        return planes.calls[-1][2]["max_cost_usd"], planes.calls[-1][2]["mode"]

    assert settings() == (None, "realtime")
    monkeypatch.setenv("SANDBOX_MAX_COST_USD", "1.5")
    monkeypatch.setenv("SANDBOX_INFER_MODE", "batch")
    assert settings() == (1.5, "batch")
    assert settings(0.25, "realtime") == (0.25, "realtime")
    monkeypatch.setenv("SANDBOX_MAX_COST_USD", "lots")
    with pytest.raises(fail_exception, match="max_cost_usd must be a number.*SANDBOX_MAX_COST"):
        tasks.run_llm_inference("2026-11-01")
    with pytest.raises(fail_exception, match="mode must be realtime or batch"):
        tasks.run_llm_inference("2026-11-01", max_cost_usd=1, mode="overnight")


def test_batch_mode_submits_then_the_sensor_collects(planes, in_task, monkeypatch) -> None:
    results = iter(["waiting", "waiting", "ok"])

    def batch(d, *, mode=None, wait_s=None, **kw):
        planes.calls.append((mode, wait_s))
        status = next(results)  # the last poke collects the escalations only
        done = 2 if status == "ok" else 0
        return {"status": status, "mode": mode, "done": done, "requests": done, "failed": 0,
                "inputs": 12, "skipped": 0, "pending_left": 1 if status == "ok" else 12,
                "batch_ids": ["msgbatch_1"] if len(planes.calls) < 3 else ["msgbatch_2"]}  # fmt: skip

    planes.decision.run_llm_inference = batch

    with connect() as con:  # the ledger: 10 primary answers and 2 escalations of two batches
        ensure_tables(con, "decision.llm_calls")
        for n, (batch_id, cost) in enumerate(
            [("msgbatch_1", 0.01)] * 10 + [("msgbatch_2", 0.1)] * 2
        ):
            con.execute(
                "insert into decision.llm_calls (call_id, execution_date, user_id, run_id, model,"
                " mode, purpose, status, error_class, attempts, input_tokens, output_tokens,"
                " cost_usd, latency_ms, batch_id, request_id, prompt_version, called_at)"
                " values (?, ?, 'u', 'r', 'm', 'batch', 'primary',"
                " 'ok', null, 1, 10, 10, ?, null, ?, null, 'p', now())",
                [f"c{n}", DAY, cost, batch_id],
            )
    submitted = tasks.run_llm_inference("2026-11-01", mode="batch")
    assert submitted["status"] == "waiting" and planes.calls == [("batch", 0.0)]
    sensor_ti = FakeTI("wait_for_batch", {"run_llm_inference": submitted})
    poke = tasks.collect_batch("2026-11-01", sensor_ti, {})
    assert not poke.is_done  # the sensor reschedules: no worker slot held meanwhile
    poke = tasks.collect_batch("2026-11-01", sensor_ti, {})
    final = poke.xcom_value
    assert poke.is_done and final["batch_ids"] == ["msgbatch_1", "msgbatch_2"]
    # the whole run's counts, although the sensor's XCom does not survive a reschedule
    assert (final["requests"], final["cost_usd"]) == (12, 0.3)
    assert (final["done"], final["failed"], final["pending_left"]) == (11, 1, 0)
    assert final["status"] == "partial"  # one row of the date was never staged
    assert planes.calls[1:] == [("batch", 0.0), ("batch", 0.0)]
    realtime = FakeTI("wait_for_batch", {"run_llm_inference": _summary()})
    assert tasks.collect_batch("2026-11-01", realtime, {}).is_done  # nothing to wait for
    assert len(planes.calls) == 3


def _report(dbt_state: str = "success", gate: list | None = None) -> RunReport:
    states = [("dbt_production", "dbt_run", dbt_state)] + [
        ("ai_recommendation_pipeline", t, "success" if dbt_state == "success" else s)
        for t, s in [
            ("wait_for_dbt_completion", "failed"),
            ("prepare_features", "upstream_failed"),
            ("run_llm_inference", "upstream_failed"),
            ("write_results", "upstream_failed"),
        ]
    ]
    return RunReport(
        execution_date=DAY,
        tasks=[TaskState(DAY, d, t, s, 1, 0.1) for d, t, s in states],
        gate_failures=gate or [],
    )


def test_report_says_when_the_gate_blocked_inference() -> None:
    report = _report(
        "failed", [{"description": "unique on staging.stg_users.user_id: 1 failing row"}]
    )
    assert not report.ok and report.gate_blocked
    assert report.gate_message() == (
        "gate blocked inference for 2026-11-01: unique on staging.stg_users.user_id: 1 failing row"
    )
    assert "upstream_failed" in report.render()
    crashed = _report("failed")
    crashed.errors["dbt_run"] = "RuntimeError: worker lost"
    assert crashed.gate_message() == (
        "dbt_production.dbt_run did not succeed for 2026-11-01 (RuntimeError: worker lost), "
        "so the sensor blocked inference"
    )
    ok = _report()
    assert ok.ok and not ok.gate_blocked and ok.gate_message() is None
    frame = task_frame([ok, report])
    assert list(frame.columns) == [
        "execution_date",
        "dag_id",
        "task_id",
        "state",
        "tries",
        "duration_s",
    ]
    assert len(frame) == 10 and frame.state.eq("success").sum() == 5


def test_run_dates_from_the_command_line() -> None:
    def args(**kw) -> argparse.Namespace:
        return argparse.Namespace(**{"date": None, "start": None, "end": None, **kw})

    assert dates_from(args()) == [DAY]
    assert dates_from(args(date=date(2026, 11, 3))) == [date(2026, 11, 3)]
    assert dates_from(args(start=DAY, end=date(2026, 11, 3))) == date_range(DAY, "2026-11-03")
    assert len(date_range(DAY, "2026-11-03")) == 3
    for bad in (args(start=DAY), args(date=DAY, start=DAY, end=DAY)):
        with pytest.raises(SandboxError):
            dates_from(bad)
    with pytest.raises(SandboxError, match="before"):
        date_range("2026-11-03", DAY)


def test_captured_output_takes_prints_logging_and_file_descriptors(
    tmp_path: Path, capfd, airflow_home_session
) -> None:
    from sandbox.control.task_logs import captured_output

    log = tmp_path / "run.log"
    logger = logging.getLogger("sandbox.test_capture")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    try:
        with captured_output(log):
            print("from print")
            logger.warning("from logging")
            os.write(1, b"from fd 1\n")
            os.write(2, b"from fd 2\n")
    finally:
        logger.removeHandler(handler)
    print("after")
    out, err = capfd.readouterr()
    assert "from" not in out + err and "after" in out
    text = log.read_text()
    assert all(s in text for s in ("from print", "from logging", "from fd 1", "from fd 2"))


def test_capture_survives_a_handler_whose_stream_was_closed(
    tmp_path: Path, airflow_home_session
) -> None:
    """A handler left on a closed stream (an earlier capture that ended) must not break the next."""
    from sandbox.control.task_logs import captured_output

    closed = io.StringIO()
    closed.close()
    handler = logging.StreamHandler(closed)
    logger = logging.getLogger("sandbox.test_closed_stream")
    logger.addHandler(handler)
    try:
        with captured_output(tmp_path / "run.log"):
            logger.warning("into the log file")
        assert "into the log file" in (tmp_path / "run.log").read_text()
        assert handler.stream is closed
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("status", "code"),
    [("success", 0), ("partial", 3), ("budget", 3), ("gate_blocked", 1), ("failed", 1)],
)
def test_sandbox_run_exits_like_sandbox_infer(status: str, code: int) -> None:
    report = _report()
    report.results = {"status": status, "rows_written": 1, "failures": 0, "llm_requests": 1,
                      "cost_usd": 0.0, "rows_pending": 0, "detail": "why"}  # fmt: skip
    assert (report.status, report.exit_code) == (status, code)
    assert f"results 2026-11-01: {status}: 1 recommendations published" in report.render()
    assert "1 LLM requests, cost $0.0000 (why)" in report.render()  # llm unknown: no label
    report.inference = {"llm": "mock"}
    assert "cost $0.0000 (simulated: offline fake at list prices) (why)" in report.render()
    report.inference = {"llm": "anthropic"}
    assert "cost $0.0000 (why)" in report.render()
    assert _report("failed").exit_code == 1  # no results row: the task states decide


@pytest.mark.parametrize(
    ("drift", "code"),
    [(None, 0), ("ok", 0), ("insufficient_history", 0), ("drift", 3), ("error", 3)],
)
def test_sandbox_run_shows_the_drift_verdict(drift: str | None, code: int) -> None:
    report = _report()
    report.errors["check_drift"] = "drift watch: 2026-11-01: drift against ..."
    report.results = {"status": "success", "rows_written": 1, "failures": 0, "llm_requests": 1,
                      "cost_usd": 0.0, "rows_pending": 0, "detail": "", "drift_status": drift,
                      "drift_detail": "2026-11-01: the message"}  # fmt: skip
    assert (report.status, report.drift, report.exit_code) == ("success", drift, code)
    text = report.render()
    if drift is None:
        assert "drift watch" not in text.replace("check_drift failed: drift watch", "")
    else:
        assert f"drift watch 2026-11-01: {drift.upper()}: 2026-11-01: the message" in text
        assert "check_drift failed" not in text  # said once, by the drift line


def test_http_request_lines_go_to_debug_while_the_task_runs_only(caplog) -> None:
    from sandbox.control.tasks import quiet_http

    logger = logging.getLogger("httpx2")
    with caplog.at_level(logging.INFO):
        with quiet_http():
            logger.info("HTTP Request: POST inside")
        logger.info("HTTP Request: POST after")
    with caplog.at_level(logging.DEBUG), quiet_http():
        logger.info("HTTP Request: POST debug on")
    seen = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "httpx2"]
    assert seen == [("INFO", "HTTP Request: POST after"), ("DEBUG", "HTTP Request: POST debug on")]


def test_each_task_ends_its_log_with_one_summary_line(planes, capsys) -> None:
    tasks.prepare_features("2026-11-01")
    tasks.run_llm_inference("2026-11-01")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("summary: prepare_features 2026-11-01 done: rows frozen 5, ")
    # what the plane's summary holds (the stand-in's: requests only), then the time
    assert lines[-1].startswith("summary: run_llm_inference 2026-11-01 done: requests 5, ")
    assert lines[-1].endswith(" s")
