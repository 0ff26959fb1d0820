"""`sandbox run` end to end: real Airflow (dag.test), real dbt, the mock LLM through the SDK.

Each test runs the CLI in a child process with its own Airflow home and warehouse.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.warehouse import connect, table_exists
from tests.control_fixtures import (  # noqa: F401  (fixtures)
    airflow_home_fixture,
    bad_raw_dir_fixture,
    migrated_home_fixture,
    sandbox_run,
    task_states,
)

pytestmark = pytest.mark.slow

DAY = "2026-11-01"
AI_TASKS = ("wait_for_dbt_completion", "prepare_features", "run_llm_inference", "write_results")


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
    assert [ai[t] for t in AI_TASKS[1:]] == ["upstream_failed"] * 3  # never ran
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
