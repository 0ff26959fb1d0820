"""The notebooks' exercise checks: worked solutions pass; blank, wrong and copied answers do not.

Every check also accepts the reasonable forms of a right answer (case and blanks, money to
four decimals, a one-cell DataFrame) and answers an unreadable one with a hint, not a crash.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

from sandbox import course

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"


def _solution(name: str) -> dict:
    return runpy.run_path(str(SOLUTIONS / f"{name}.py"))


def _no_answer_in(verdict, *answers) -> None:
    """A miss must not reveal the answer it is checked against."""
    assert not verdict
    for answer in answers:
        assert str(answer) not in repr(verdict), f"{verdict!r} reveals {answer!r}"


# --- reading answers -------------------------------------------------------------------------


def test_answers_in_reasonable_forms_are_read_the_same() -> None:
    assert course._scalar(pd.DataFrame({"x": [0.5006]})) == 0.5006
    assert course._scalar(pd.Series(["churn_risk"])) == "churn_risk"
    assert course._text(" 'Churn_Risk' ") == "churn_risk"
    assert course._number("$1,234.5") == 1234.5
    assert course._same_money(0.5006, 0.50061234) and not course._same_money(0.5, 0.50061234)
    with pytest.raises(course._Unreadable, match="table of 3 row"):
        course._scalar(pd.DataFrame({"x": [1, 2, 3]}))
    assert course._blank(None) and course._blank("  ") and course._blank(pd.DataFrame())
    assert not course._blank(0)


# --- set-up: each notebook its own state -------------------------------------------------


def test_setup_gives_each_notebook_its_own_fresh_state(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv(course.SCRATCH_ENV, raising=False)
    monkeypatch.setattr(course, "_BASE", None)
    # a kernel that has not loaded Airflow yet (another test in this worker may have)
    monkeypatch.delitem(sys.modules, "airflow.configuration", raising=False)
    for name in ("SANDBOX_AIRFLOW_HOME", "SANDBOX_LLM", "SANDBOX_RAW_DIR"):
        monkeypatch.setenv(name, "x")  # recorded, so monkeypatch restores it after setup() sets it
        monkeypatch.delenv(name)
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(tmp_path / "elsewhere"))
    home = course.setup("99_demo")
    assert home == tmp_path / "warehouse" / "notebooks" / "99_demo"
    assert os.environ["SANDBOX_WAREHOUSE"] == str(home / "sandbox.duckdb")
    assert os.environ["SANDBOX_AIRFLOW_HOME"] == str(home / "airflow")
    assert "SANDBOX_RAW_DIR" not in os.environ
    out = capsys.readouterr().out
    assert "LLM: mock" in out and "99_demo/sandbox.duckdb (this notebook's own" in out
    # what the notebook wrote is gone on the next run; another notebook's folder is untouched
    (home / "left-over").write_text("x")
    other = course.setup("98_other")
    (other / "kept").write_text("x")
    course.setup("99_demo")
    assert not (home / "left-over").exists() and (other / "kept").exists()


def test_setup_uses_the_scratch_folder_when_set(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(course.SCRATCH_ENV, str(tmp_path / "scratch"))
    monkeypatch.setenv("SANDBOX_AIRFLOW_HOME", "x")
    monkeypatch.setenv("SANDBOX_LLM", "mock")
    home = course.setup("99_demo")
    assert home == tmp_path / "scratch" / "99_demo"
    assert os.environ["SANDBOX_WAREHOUSE"].startswith(str(home))


def test_offline_costs_say_they_are_simulated(monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_LLM", "mock")
    assert course.cost_note() == "(simulated: offline fake at list prices)"
    assert course.cost_note("anthropic") == ""


# --- 00 ------------------------------------------------------------------------------------


def test_00_solutions_pass_and_others_do_not(warehouse: Path) -> None:
    from sandbox.decision import infer
    from sandbox.warehouse import query_df

    answers = _solution("00_start_here")
    assert course.check_planes(answers["answers"])
    assert course.check_planes({k: v.upper() for k, v in answers["answers"].items()})
    assert not course.check_planes({k: "data" for k in answers["answers"]})
    assert not course.check_planes(None)
    assert not course.check_planes(dict.fromkeys(answers["answers"]))
    infer("2026-11-01", progress=False)
    frame = query_df(answers["top_sql"])
    assert course.check_top_recommendation("2026-11-01", frame)  # a 1x1 DataFrame is fine
    assert course.check_top_recommendation("2026-11-01", frame.iloc[0, 0].upper())
    assert not course.check_top_recommendation("2026-11-01", "nope")
    assert not course.check_top_recommendation("2026-11-01", "")
    assert "table of" in repr(course.check_top_recommendation("2026-11-01", query_df(
        "select * from marts.user_recommendations")))  # fmt: skip


# --- 01 ------------------------------------------------------------------------------------


def test_01_solutions_pass_and_misses_get_hints_not_answers(warehouse: Path) -> None:
    from sandbox.warehouse import query_df

    answers = _solution("01_data_plane")
    assert course.check_fading_users(answers["answer_sql"])
    assert course.check_predicted_summary("u000042", answers["predicted"])
    assert course.check_predicted_summary(
        "u000042", "  " + answers["predicted"].replace(". ", ".  ")
    )
    assert not course.check_fading_users(None)
    assert not course.check_fading_users("select user_id from marts.dim_users")
    assert "did not run" in repr(course.check_fading_users("select nope"))
    actual = query_df(
        "select user_summary_for_llm from marts.fct_user_features_for_ai where user_id = 'u000042'"
    ).iloc[0, 0]
    wrong = course.check_predicted_summary("u000042", "User is nice.")
    _no_answer_in(wrong, actual)
    assert "sentence 1" in repr(wrong)
    _no_answer_in(course.check_predicted_summary("u000042", actual.replace("15", "16")), actual)
    assert "case" in repr(course.check_predicted_summary("u000042", actual.lower()))
    assert not course.check_predicted_summary("u000042", None)


# --- 02 ------------------------------------------------------------------------------------


def test_02_solutions_pass_and_wrong_or_copied_answers_do_not(warehouse: Path) -> None:
    answers = _solution("02_quality_gate")
    assert course.check_gate_explanation(answers["drill_name"], answers["failing_check"])
    assert course.check_gate_explanation("DUPLICATE_KEY", " Unique ")
    # the notebook calls the runaway summary "the contract at work": both names are right
    for name in ("model", "contract", "check constraint"):
        assert course.check_gate_explanation("runaway_summary", name)
    assert course.check_gate_explanation("future_event", "handled")
    copied = course.check_gate_explanation("unknown_plan_tier", "accepted_values")
    assert not copied and "example" in repr(copied)
    _no_answer_in(course.check_gate_explanation("duplicate_key", "not_null"), "unique")
    assert not course.check_gate_explanation(None, None)
    assert not course.check_gate_explanation("nope", "unique")
    assert course.check_custom_break(answers["break_raw"])
    assert not course.check_custom_break(lambda raw: None)
    assert not course.check_custom_break(None)


@pytest.mark.slow
def test_02_build_it_dbt_model_is_judged_by_the_build(warehouse: Path) -> None:
    answers = _solution("02_quality_gate")
    mine = (answers["my_model"], answers["my_model_sql"], answers["my_model_yml"])
    assert course.check_dbt_model(*mine)
    assert not course.check_dbt_model(None, None, None)
    # a lesson's (or the shipped project's) model is not the learner's own
    assert "already exists" in repr(
        course.check_dbt_model("fct_user_features_for_ai", mine[1], mine[2])
    )
    # no unit test, or no data test: not yet
    no_unit = mine[2].split("unit_tests:")[0]
    assert "unit_tests" in repr(course.check_dbt_model(mine[0], mine[1], no_unit))
    no_data = mine[2].replace("data_tests:", "meta_tests:")
    assert "data test" in repr(course.check_dbt_model(mine[0], mine[1], no_data))
    # a wrong expectation is caught by dbt's unit test, and the gate's message says so
    wrong = course.check_dbt_model(
        mine[0], mine[1], mine[2].replace("quiet_users: 2}", "quiet_users: 3}")
    )
    assert not wrong and "unit test" in repr(wrong)
    # a unit test that cannot fail (it expects nothing from nothing) is refused
    hollow = (
        mine[2].split("given:")[0]
        + "given:\n      - input: ref('fct_user_features_for_ai')\n        rows: []\n    expect:\n      rows: []\n"
    )
    assert "still passes" in repr(course.check_dbt_model(mine[0], mine[1], hollow))
    # a data test that fails on the real rows stops the model
    failing = mine[2].replace(
        "- unique", "- accepted_values:\n              arguments:\n                values: ['pro']"
    )
    assert "gate stopped your model" in repr(course.check_dbt_model(mine[0], mine[1], failing))


# --- 03 ------------------------------------------------------------------------------------


def test_03_solutions_pass_and_misses_get_hints(warehouse: Path) -> None:
    from sandbox.decision import infer
    from sandbox.warehouse import query_df

    answers = _solution("03_decision_plane")
    assert course.check_predicted_type(answers["summary"], answers["predicted_type"])
    assert course.check_predicted_type(answers["summary"], "CHURN_RISK")
    miss = course.check_predicted_type(answers["summary"], "re_engagement")
    _no_answer_in(miss, "churn_risk")
    assert "not a type" in repr(course.check_predicted_type(answers["summary"], "nope"))
    assert not course.check_predicted_type(answers["summary"], None)
    infer("2026-11-01", progress=False)
    frame = query_df(answers["escalation_sql"])
    cost = float(frame.iloc[0, 0])
    assert course.check_escalation_cost("2026-11-01", frame)
    assert course.check_escalation_cost("2026-11-01", round(cost, 4))  # what the notebook displays
    assert course.check_escalation_cost("2026-11-01", f"${cost:.4f}")
    assert not course.check_escalation_cost("2026-11-01", None)
    assert not course.check_escalation_cost("2026-11-01", cost + 0.001)
    everything = query_df("select sum(cost_usd) from decision.llm_calls").iloc[0, 0]
    assert "only the escalations" in repr(course.check_escalation_cost("2026-11-01", everything))


def test_03_build_it_request_is_checked_against_the_fake() -> None:
    import json

    answers = _solution("03_decision_plane")
    assert course.check_one_request(answers["recommend_one"])
    assert not course.check_one_request(None)

    def no_schema(client, summary):  # a plain request: the shape is not enforced
        from sandbox.decision.prompt import SYSTEM_PROMPT, parse_answer

        return parse_answer(client.messages.create(
            model="claude-haiku-4-5", max_tokens=300, system=SYSTEM_PROMPT,
            messages=[{"role": "user", "content": summary}]))  # fmt: skip

    assert "output_config" in repr(course.check_one_request(no_schema))

    def unvalidated(client, summary):  # structured output, but the answer is trusted as is
        from sandbox.decision.prompt import OUTPUT_SCHEMA, SYSTEM_PROMPT

        message = client.messages.create(
            model="claude-haiku-4-5", max_tokens=300, system=SYSTEM_PROMPT,
            messages=[{"role": "user", "content": summary}],
            output_config={"format": {"type": "json_schema", "schema": OUTPUT_SCHEMA}})  # fmt: skip
        return json.loads(message.content[0].text)

    assert "validate" in repr(course.check_one_request(unvalidated))

    def twice(client, summary):
        answers["recommend_one"](client, summary)
        return answers["recommend_one"](client, summary)

    assert "exactly one" in repr(course.check_one_request(twice))


def test_recording_client_shows_the_wire() -> None:
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.prompt import build_params

    book = load_price_book()
    client, sent = course.recording_client()
    client.messages.create(**build_params(book.get(book.primary), "u1", "User has been on the pro plan for 3 days. No activity recorded since signing up."))  # fmt: skip
    (exchange,) = sent
    assert exchange.url.endswith("/v1/messages") and exchange.status == 200
    assert exchange.body["output_config"]["format"]["type"] == "json_schema"
    assert exchange.response["stop_reason"] == "end_turn"
    assert "mock-key-offline" not in str(exchange.headers)


# --- 04 ------------------------------------------------------------------------------------


def _record_runs(rows: list[tuple[str, str, int]]) -> None:
    from datetime import datetime

    from sandbox.control.runs import ensure_table
    from sandbox.warehouse import connect

    with connect() as con:
        ensure_table(con)
        for n, (day, status, requests) in enumerate(rows):
            con.execute(
                "insert into ops.pipeline_runs (execution_date, dag_run_id, status, rows_written,"
                " failures, llm_requests, cost_usd, recorded_at) values (?, ?, ?, 500, 0, ?, 0.0, ?)",
                [day, f"run{n}", status, requests, datetime(2026, 11, 25, 10, n)],
            )


def test_04_rerun_check_wants_both_runs_in_order(warehouse: Path) -> None:
    day = course.RERUN_DATE
    assert "twice first" in repr(course.check_rerun_requests(day, [709, 0]))
    _record_runs([(day, "success", 709), (day, "success", 0)])
    assert course.check_rerun_requests(day, [709, 0])
    assert course.check_rerun_requests(day, pd.DataFrame({"llm_requests": [709, 0]}))
    assert not course.check_rerun_requests(day, 0)  # the literal 0 alone is not the answer
    assert "order" in repr(course.check_rerun_requests(day, [0, 709]))
    _no_answer_in(course.check_rerun_requests(day, [700, 0]), 709)
    assert not course.check_rerun_requests(day, None)


@pytest.mark.slow
def test_04_build_it_task_is_run_by_airflow(warehouse: Path, tmp_path: Path) -> None:
    answers = _solution("04_control_plane")
    dag = tmp_path / "pipeline_health.py"
    assert "%%writefile" in repr(course.check_pipeline_task(dag))  # nothing written yet
    dag.write_text(answers["pipeline_health_dag"])
    assert "Step 3" in repr(course.check_pipeline_task(dag))  # no run recorded yet
    _record_runs([("2026-10-31", "success", 709)])
    assert course.check_pipeline_task(dag)
    # a task that never fails is not a check
    dag.write_text(answers["pipeline_health_dag"].replace("raise ValueError", "print"))
    assert "should fail" in repr(course.check_pipeline_task(dag))
    dag.write_text(answers["pipeline_health_dag"].replace("check_last_run", "check_it"))
    assert "no task check_last_run" in repr(course.check_pipeline_task(dag))
    dag.write_text("from airflow.sdk import dag\nthis is not python\n")
    assert "could not import" in repr(course.check_pipeline_task(dag))


# --- 05 ------------------------------------------------------------------------------------


def test_05_trace_wants_an_escalated_user_and_all_its_costs(warehouse: Path) -> None:
    from sandbox.decision import infer
    from sandbox.warehouse import query_df

    answers = _solution("05_end_to_end")
    infer("2026-11-01", progress=False)
    user = query_df(answers["escalated_sql"]).iloc[0, 0]
    row = query_df(answers["trace_sql"].format(user=user)).iloc[0]
    trace = {k: row[k] for k in ("user_id", "prompt_version", "user_summary_for_llm", "cost_usd")}
    assert course.check_trace("2026-11-01", trace)
    assert course.check_trace(
        "2026-11-01", {**trace, "cost_usd": round(float(trace["cost_usd"]), 4)}
    )
    assert course.check_trace("2026-11-01", trace["user_id"], trace)  # the older form
    lesson_user = course.check_trace("2026-11-01", {**trace, "user_id": "u000003"})
    assert not lesson_user and "first user after" in repr(lesson_user)
    primary = query_df(
        f"select sum(cost_usd) from decision.llm_calls where user_id = '{user}' and purpose = 'primary'"
    ).iloc[0, 0]
    primary_only = course.check_trace("2026-11-01", {**trace, "cost_usd": primary})
    assert not primary_only and "add the escalation" in repr(primary_only)
    assert not course.check_trace("2026-11-01", dict.fromkeys(trace))
    assert not course.check_trace("2026-11-01", None)


def test_05_new_model_must_be_new_tested_and_built(
    warehouse: Path, tmp_path: Path, monkeypatch
) -> None:
    import shutil

    from sandbox.config import DBT_PROJECT_DIR
    from sandbox.data import build

    answers = _solution("05_end_to_end")
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    marts = project / "models" / "marts"
    assert "not yours" in repr(course.check_new_model(project, "fct_users_per_plan"))
    assert "not yours" in repr(course.check_new_model(project, "dim_users"))
    assert not course.check_new_model(project, None)
    (marts / f"{answers['new_model']}.sql").write_text(answers["new_model_sql"])
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(project))
    build("2026-11-01")
    assert "no data test" in repr(course.check_new_model(project, answers["new_model"]))
    (marts / f"{answers['new_model']}.yml").write_text(answers["new_model_yml"])
    build("2026-11-01")
    assert course.check_new_model(project, answers["new_model"].upper())
