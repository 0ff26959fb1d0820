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
from sandbox.control import tasks
from sandbox.control.capture import captured_output
from sandbox.control.cli import dates_from
from sandbox.control.pipeline import RunReport, TaskState, date_range, task_frame
from sandbox.warehouse import WarehouseBusy, connect
from tests.control_fixtures import airflow_home_session_fixture  # noqa: F401

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
        ("infer", DAY, {"llm": "anthropic", "model": "m", "batch_size": 7, "progress": False}),
        ("write", DAY),
    ]
    tasks.run_llm_inference("2026-11-01", llm="mock")
    assert planes.calls[-1][2]["llm"] == "mock"  # the DAG param wins over SANDBOX_LLM


class FakeTI:
    def __init__(self, task_id: str, xcoms: dict) -> None:
        self.task_id = task_id
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str):
        return self.xcoms.get(task_ids)


def _runs() -> list[tuple]:
    with connect(read_only=True) as con:
        return con.execute(
            "select dag_run_id, status, rows_written, failures, llm_requests, cost_usd"
            " from ops.pipeline_runs order by dag_run_id"
        ).fetchall()


def test_callbacks_record_the_run_summary() -> None:
    xcoms = {
        "run_llm_inference": {"failed": 2, "requests": 12, "cost_usd": 0.5},
        "write_results": 10,
    }
    context = {"ds": "2026-11-01", "run_id": "r1", "ti": FakeTI("write_results", xcoms)}
    tasks.record_pipeline_run(context, succeeded=True)
    blocked = {"ds": "2026-11-01", "run_id": "r2", "ti": FakeTI("wait_for_dbt_completion", {})}
    tasks.record_pipeline_run(blocked, succeeded=False)
    crashed = {"ds": "2026-11-01", "run_id": "r3", "ti": FakeTI("run_llm_inference", {})}
    tasks.record_pipeline_run(crashed, succeeded=False)
    tasks.record_pipeline_run(context, succeeded=True)  # a re-run of a callback: same row
    assert _runs() == [
        ("r1", "success", 10, 2, 12, 0.5),
        ("r2", "gate_blocked", 0, 0, 0, 0.0),
        ("r3", "failed", 0, 0, 0, 0.0),
    ]


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
        dag_states={},
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


def test_captured_output_takes_prints_logging_and_file_descriptors(tmp_path: Path, capfd) -> None:
    log = tmp_path / "run.log"
    logger = logging.getLogger("sandbox.test_capture")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    try:
        with captured_output(log, truncate=True):
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


def test_capture_survives_a_handler_whose_stream_was_closed(tmp_path: Path) -> None:
    """A handler left on a closed stream (an earlier capture that ended) must not break the next."""
    closed = io.StringIO()
    closed.close()
    handler = logging.StreamHandler(closed)
    logger = logging.getLogger("sandbox.test_closed_stream")
    logger.addHandler(handler)
    try:
        with captured_output(tmp_path / "run.log", truncate=True):
            logger.warning("into the log file")
        assert "into the log file" in (tmp_path / "run.log").read_text()
        assert handler.stream is closed
    finally:
        logger.removeHandler(handler)
