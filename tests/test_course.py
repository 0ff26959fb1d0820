"""The notebooks' exercise checks: the worked solutions pass, blank and wrong answers do not."""

from __future__ import annotations

import runpy
from pathlib import Path

from sandbox import course

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"


def _solution(name: str) -> dict:
    return runpy.run_path(str(SOLUTIONS / f"{name}.py"))


def test_01_solutions_pass_and_blanks_do_not(warehouse: Path) -> None:
    answers = _solution("01_data_plane")
    assert course.check_fading_users(answers["answer_sql"])
    assert course.check_predicted_summary("u000042", answers["predicted"])
    assert not course.check_fading_users(None)
    assert not course.check_fading_users("select user_id from marts.dim_users")
    assert "did not run" in repr(course.check_fading_users("select nope"))
    assert not course.check_predicted_summary("u000042", "User is nice.")


def test_02_solutions_pass_and_wrong_answers_do_not(warehouse: Path) -> None:
    answers = _solution("02_quality_gate")
    assert course.check_gate_explanation(answers["drill_name"], answers["failing_check"])
    assert course.check_custom_break(answers["break_raw"])
    assert not course.check_gate_explanation("duplicate_key", "not_null")
    assert not course.check_custom_break(lambda raw: None)


def test_setup_isolates_each_notebook(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(course.SCRATCH_ENV, str(tmp_path))
    for name in ("SANDBOX_AIRFLOW_HOME", "SANDBOX_LLM"):
        monkeypatch.setenv(name, "")  # recorded, so monkeypatch restores it after setup() sets it
        monkeypatch.delenv(name)
    course.setup("99_demo")
    out = capsys.readouterr().out
    assert "LLM: mock" in out and "scratch" in out
    assert str(tmp_path / "99_demo") in __import__("os").environ["SANDBOX_WAREHOUSE"]


def test_03_solutions_pass_and_blanks_do_not(warehouse: Path) -> None:
    from sandbox.decision import infer
    from sandbox.warehouse import query_df

    answers = _solution("03_decision_plane")
    assert course.check_predicted_type(answers["summary"], answers["predicted_type"])
    assert not course.check_predicted_type(answers["summary"], "upgrade_prompt")
    infer("2026-11-01", progress=False)
    cost = query_df(answers["escalation_sql"]).iloc[0, 0]
    assert course.check_escalation_cost("2026-11-01", cost)
    assert not course.check_escalation_cost("2026-11-01", None)
    assert not course.check_escalation_cost("2026-11-01", cost + 1)


def test_00_solutions_pass(warehouse: Path) -> None:
    from sandbox.decision import infer
    from sandbox.warehouse import query_df

    answers = _solution("00_start_here")
    assert course.check_planes(answers["answers"])
    assert not course.check_planes({k: "data" for k in answers["answers"]})
    assert not course.check_planes(None)
    infer("2026-11-01", progress=False)
    top = query_df(answers["top_sql"]).iloc[0, 0]
    assert course.check_top_recommendation("2026-11-01", top)
    assert not course.check_top_recommendation("2026-11-01", "nope")


def test_04_checks(warehouse: Path) -> None:
    from datetime import datetime

    from sandbox.warehouse import connect, ensure_tables

    answers = _solution("04_control_plane")
    assert course.check_sensor_target(answers["sensor_dag_id"], answers["sensor_task_id"])
    assert not course.check_sensor_target("dbt_production", "prepare_features")
    with connect() as con:
        ensure_tables(con, "ops.pipeline_runs")
        for n, (run, requests) in enumerate((("first", 709), ("second", 0))):
            con.execute(
                "insert into ops.pipeline_runs (execution_date, dag_run_id, status, rows_written, failures,"
                " llm_requests, cost_usd, recorded_at) values ('2026-11-01', ?, 'success', 500, 0, ?, 0.0, ?)",
                [run, requests, datetime(2026, 11, 25, 10, n)],
            )
    assert course.check_backfill_requests("2026-11-01", 0)
    assert not course.check_backfill_requests("2026-11-01", 709)


def test_05_solutions_pass(warehouse: Path, tmp_path: Path, monkeypatch) -> None:
    import shutil

    from sandbox.config import DBT_PROJECT_DIR
    from sandbox.data import build
    from sandbox.decision import infer
    from sandbox.warehouse import query_df

    answers = _solution("05_end_to_end")
    infer("2026-11-01", progress=False)
    version, summary, cost = query_df(answers["trace_sql"]).iloc[0]
    trace = {"prompt_version": version, "user_summary_for_llm": summary, "cost_usd": cost}
    assert course.check_trace("2026-11-01", answers["trace_user"], trace)
    assert not course.check_trace("2026-11-01", answers["trace_user"], {**trace, "cost_usd": 0})
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models" / "marts" / f"{answers['new_model']}.sql"
    model.write_text(answers["new_model_sql"])
    assert not course.check_new_model(project, answers["new_model"])  # not built yet
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(project))
    build("2026-11-01")
    assert course.check_new_model(project, answers["new_model"])
