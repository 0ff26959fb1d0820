"""`sandbox run` end to end: real Airflow (dag.test), real dbt, the mock LLM through the SDK.

Each test runs the CLI in a child process with its own Airflow home and warehouse.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sandbox.warehouse import connect, table_exists
from tests.control.conftest import (  # noqa: F401  (fixtures)
    airflow_home_fixture,
    bad_raw_dir_fixture,
    migrated_home_fixture,
    sandbox_run,
    task_states,
)

pytestmark = pytest.mark.slow

DAY = "2026-11-01"
AI_TASKS = (
    "wait_for_dbt_completion",
    "prepare_features",
    "run_llm_inference",
    "wait_for_batch",
    "write_results",
    "check_drift",
)


def _rows(sql: str, params: list | None = None) -> list[tuple]:
    with connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _requests(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_shipped_data_gives_one_recommendation_per_user_and_a_rerun_is_free(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log))

    first = sandbox_run("--date", DAY)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "all tasks succeeded" in first.stdout
    assert set(task_states(airflow_home, "ai_recommendation_pipeline").values()) == {"success"}
    mart_users = _rows("select user_id from marts.fct_user_features_for_ai order by user_id")
    recommendations = "select * from marts.user_recommendations order by user_id, execution_date"
    published = _rows(recommendations)
    assert [(r[0],) for r in published] == mart_users  # one row per mart user, nothing else
    assert {r[1].isoformat() for r in published} == {DAY}
    calls, sent = _rows("select count(*) from decision.llm_calls")[0][0], _requests(log)
    assert calls > 0 and sent > 0

    second = sandbox_run("--date", DAY)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _requests(log) == sent  # not one request more
    assert _rows("select count(*) from decision.llm_calls")[0][0] == calls
    assert _rows(recommendations) == published  # no row changed
    runs = _rows(
        "select status, rows_written, llm_requests from ops.pipeline_runs order by recorded_at"
    )
    assert [r[0] for r in runs] == ["success", "success"]
    assert runs[0][1] == runs[1][1] == len(mart_users)
    assert runs[0][2] > 0 and runs[1][2] == 0
    _assert_the_latest_run_and_its_logs(airflow_home)


def _assert_the_latest_run_and_its_logs(home: Path) -> None:
    """What the Airflow UI reads: the date's latest run, with its task logs."""
    import sqlite3
    from datetime import datetime

    with sqlite3.connect(home / "airflow.db") as db:
        runs = db.execute(
            "select run_id, logical_date, data_interval_start, start_date, end_date, state"
            " from dag_run where dag_id = 'ai_recommendation_pipeline' order by id"
        ).fetchall()
        tries = db.execute(
            "select run_id, task_id, try_number from task_instance"
            " where dag_id = 'ai_recommendation_pipeline'"
        ).fetchall()
    # dag.test() as Airflow ships it: the re-run replaced the date's DAG run in the metadata
    # DB; ops.pipeline_runs keeps a row for each run, and each run's task logs stay on disk
    assert len(runs) == 1 and runs[0][5] == "success"
    assert runs[0][1].startswith(f"{DAY} 02:00") and runs[0][2].startswith(f"{DAY} 02:00")
    assert datetime.fromisoformat(runs[0][4]).date() > datetime.fromisoformat(DAY).date()
    with connect(read_only=True) as con:
        recorded = [r[0] for r in con.execute("select dag_run_id from ops.pipeline_runs").fetchall()]
    assert len(set(recorded)) == 2 and runs[0][0] in recorded
    folders = list((home / "logs" / "dag_id=ai_recommendation_pipeline").glob("run_id=*"))
    assert len(folders) == 2
    for run_id, task_id, try_number in tries:
        log = (
            home / "logs" / "dag_id=ai_recommendation_pipeline" / f"run_id={run_id}"
            / f"task_id={task_id}" / f"attempt={try_number}.log"
        )  # fmt: skip
        assert log.stat().st_size > 0, log
    inference_logs = "".join(
        p.read_text() for p in (home / "logs").glob("dag_id=ai_*/run_id=*/task_id=run_llm*/*")
    )
    # the task's own output, in its own file: one summary line, no line per HTTP request
    assert "summary: run_llm_inference 2026-11-01 done: status ok" in inference_logs
    assert "HTTP Request" not in inference_logs


def test_failed_gate_blocks_inference(
    airflow_home: Path, bad_raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log))

    result = sandbox_run("--date", DAY)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"gate blocked inference for {DAY}: unique on staging.stg_users" in result.stdout
    assert task_states(airflow_home, "dbt_production") == {"dbt_run": "failed"}
    ai = task_states(airflow_home, "ai_recommendation_pipeline")
    assert ai["wait_for_dbt_completion"] == "failed"  # the sensor timed out
    assert [ai[t] for t in AI_TASKS[1:]] == ["upstream_failed"] * 5  # never ran
    assert _requests(log) == 0
    with connect(read_only=True) as con:
        if table_exists(con, "decision.llm_calls"):
            assert (
                con.execute(
                    "select count(*) from decision.llm_calls where execution_date = ?", [DAY]
                ).fetchone()[0]
                == 0
            )
    assert _rows("select status, llm_requests from ops.pipeline_runs") == [("gate_blocked", 0)]
    gate = _gate_xcom(airflow_home)
    assert any(f["test"] == "unique" and f["column"] == "user_id" for f in gate)


def _gate_xcom(home: Path) -> list[dict]:
    """The failing tests dbt_run left in XCom (what the Airflow UI shows)."""
    import sqlite3

    with sqlite3.connect(home / "airflow.db") as db:
        [(value,)] = db.execute(
            "select value from xcom where dag_id = 'dbt_production' and key = 'gate_failures'"
        ).fetchall()
    return json.loads(value)


def test_refusals_make_the_run_partial_with_what_was_answered_published(
    airflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "refusal=0.2,seed=1")

    result = sandbox_run("--date", DAY)

    assert result.returncode == 3, result.stdout + result.stderr
    assert "all tasks succeeded" not in result.stdout
    assert f"INCOMPLETE: {DAY} partial" in result.stdout
    ai = task_states(airflow_home, "ai_recommendation_pipeline")
    assert ai["run_llm_inference"] == "success" and ai["write_results"] == "failed"
    [(status, written, failures, detail)] = _rows(
        "select status, rows_written, failures, detail from ops.pipeline_runs"
    )
    published = _rows("select count(*) from marts.user_recommendations")[0][0]
    failed_rows = _rows("select count(distinct user_id) from decision.inference_failures")[0][0]
    assert status == "partial" and failures == failed_rows > 0
    assert written == published == 500 - failed_rows  # the answers are published anyway
    assert detail == f"{failures} rows failed (decision.inference_failures)"
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        [(state,)] = db.execute(
            "select state from dag_run where dag_id = 'ai_recommendation_pipeline'"
        ).fetchall()
    assert state == "failed"  # what the UI shows: not a success


def test_an_unreachable_api_fails_the_run_at_once_naming_the_cause(
    airflow_home: Path,
) -> None:
    env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "dummy"}

    result = sandbox_run("--date", DAY, "--llm", "anthropic", env=env)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "run_llm_inference failed: the LLM API at http://127.0.0.1:9 was not reached" in (
        result.stdout
    )
    ai = task_states(airflow_home, "ai_recommendation_pipeline")
    assert ai["run_llm_inference"] == "failed" and ai["write_results"] == "upstream_failed"
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        [(tries,)] = db.execute(
            "select try_number from task_instance where task_id = 'run_llm_inference'"
        ).fetchall()
    assert tries == 1  # no Airflow retry: a retry cannot fix it
    attempted = _rows("select count(distinct user_id) from decision.inference_failures")[0][0]
    assert attempted == 10  # the probe; the other 490 rows were never tried
    [(status, detail)] = _rows("select status, detail from ops.pipeline_runs")
    assert status == "failed" and "was not reached" in detail
