"""The notebooks' exercise checks: worked solutions pass; blank, wrong and shortcut answers do not.

Every shortcut an instructor found (a shipped constant, a printed number, the helper the
lesson used, a handful of guesses) is a test here that must fail, next to the right, wrong
and blank answers. A miss gives a hint, never the answer; misses are bounded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from sandbox import course
from sandbox.course import notebook, verdicts
from tests.course.conftest import solution as _solution

TYPES = ("upgrade_prompt", "re_engagement", "feature_discovery", "churn_risk")


def _no_answer_in(verdict, *answers) -> None:
    """A miss must not reveal the answer it is checked against."""
    assert not verdict
    for answer in answers:
        assert str(answer) not in repr(verdict), f"{verdict!r} reveals {answer!r}"


# --- reading answers, attempts -------------------------------------------------------------


def test_answers_in_reasonable_forms_are_read_the_same() -> None:
    assert verdicts.scalar(pd.DataFrame({"x": [0.5006]})) == 0.5006
    assert verdicts.scalar(pd.Series(["churn_risk"])) == "churn_risk"
    assert verdicts.text(" 'Churn_Risk' ") == "churn_risk"
    assert verdicts.number("$1,234.5") == 1234.5
    assert verdicts.same_money(0.5006, 0.50061234) and not verdicts.same_money(0.5, 0.50061234)
    with pytest.raises(verdicts.Miss, match="table of 3 row"):
        verdicts.scalar(pd.DataFrame({"x": [1, 2, 3]}))
    assert verdicts.blank(None) and verdicts.blank("  ") and verdicts.blank(pd.DataFrame())
    assert not verdicts.blank(0)


def test_attempts_are_bounded_and_blanks_do_not_count(fresh_attempts: Path, monkeypatch) -> None:
    monkeypatch.setattr(verdicts, "MAX_ATTEMPTS", course.MAX_ATTEMPTS)
    right = _solution("00_start_here")["answers"]
    for _ in range(3):
        assert "fill in" in repr(course.check_planes(None))  # blank: free
    for n in range(course.MAX_ATTEMPTS):
        miss = course.check_planes({k: "data" for k in right})
        assert f"{course.MAX_ATTEMPTS - n - 1} attempt(s) left" in repr(miss)
    done = course.check_planes(right)
    assert not done and "no more attempts" in repr(done)
    fresh_attempts.unlink()  # an instructor resets a learner's count by removing the file
    assert course.check_planes(right)


def test_grades_are_recorded_when_asked(tmp_path: Path, monkeypatch) -> None:
    grades = tmp_path / "grades.jsonl"
    monkeypatch.setenv(verdicts.GRADES_ENV, str(grades))
    course.check_planes(None)
    course.check_planes(_solution("00_start_here")["answers"])
    lines = grades.read_text().splitlines()
    assert lines == [
        '{"exercise": "00.1", "ok": false, "blank": true}',
        '{"exercise": "00.1", "ok": true, "blank": false}',
    ]


# --- set-up: each notebook its own state -------------------------------------------------


def test_setup_gives_each_notebook_its_own_fresh_state(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv(course.SCRATCH_ENV, raising=False)
    monkeypatch.setattr(notebook, "_BASE", None)
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


def test_offline_output_says_it_is_simulated(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SANDBOX_LLM", "mock")
    assert course.cost_note() == "(simulated: offline fake at list prices)"
    course.simulated()
    assert "simulated" in capsys.readouterr().out
    monkeypatch.setenv("SANDBOX_LLM", "anthropic")
    assert course.cost_note() == ""
    course.simulated()
    assert capsys.readouterr().out == ""


# --- 00 ------------------------------------------------------------------------------------


def test_00_planes_pass_right_and_refuse_wrong_blank_and_shortcuts() -> None:
    answers = _solution("00_start_here")["answers"]
    assert course.check_planes(answers)
    assert course.check_planes({k: v.upper() for k, v in answers.items()})
    assert not course.check_planes(None) and not course.check_planes(dict.fromkeys(answers))
    one_wrong = {**answers, "retries a 429 from the API": "control"}
    miss = course.check_planes(one_wrong)
    assert "1 of 6" in repr(miss) and "retries a 429" not in repr(miss)  # not which one
    assert "not a plane" in repr(course.check_planes({k: "dbt" for k in answers}))
    # the shortcut: the answers shipped in clear next to the check
    assert not hasattr(course, "PLANE_OF")
    assert not course.check_planes(course.verdicts.PLANE_DIGESTS)


def test_00_top_type_query_runs_on_hidden_data() -> None:
    sql = _solution("00_start_here")["top_sql"]
    assert course.check_top_recommendation(sql)
    assert not course.check_top_recommendation(None)
    assert "did not run" in repr(course.check_top_recommendation("select nope"))
    # four guesses: a constant answer fails whatever it is
    for kind in TYPES:
        assert not course.check_top_recommendation(f"select '{kind}'")
    # no date filter: the other dates lead with another type
    no_date = "select recommendation_type from marts.user_recommendations group by 1 order by count(*) desc limit 1"
    assert not course.check_top_recommendation(no_date)


# --- 01 ------------------------------------------------------------------------------------


def test_01_fading_query_runs_on_hidden_rows() -> None:
    assert course.check_fading_users(_solution("01_data_plane")["answer_sql"])
    assert course.check_fading_users(
        "select user_id from marts.fct_user_features_for_ai "
        "where event_count_7d = 0 and days_since_last_event between 8 and 30"
    )
    assert not course.check_fading_users(None)
    assert not course.check_fading_users("select user_id from marts.fct_user_features_for_ai")
    edge = course.check_fading_users(
        "select user_id from marts.fct_user_features_for_ai "
        "where event_count_7d = 0 and days_since_last_event < 30"
    )
    assert not edge and "30-day edge" in repr(edge)
    # the shortcut: the checker's own query shipped as a constant
    assert not hasattr(course, "FADING_SQL")


def test_01_summary_function_is_judged_on_hidden_rows(warehouse: Path) -> None:
    from sandbox.warehouse import query_df

    summarize = _solution("01_data_plane")["summarize"]
    assert course.check_summary_function(summarize)
    assert not course.check_summary_function(None)
    # the solution reproduces every row of the real mart: the hashes' source is the mart's SQL
    mart = query_df("select * from marts.fct_user_features_for_ai")
    for row in mart.itertuples():
        last = None if pd.isna(row.days_since_last_event) else int(row.days_since_last_event)
        mine = summarize(row.plan_tier, int(row.days_since_signup), last, int(row.event_count_7d),
                         int(row.distinct_event_types_7d))  # fmt: skip
        assert mine == row.user_summary_for_llm
    # always plural: "1 days" is not what the mart writes
    plural = course.check_summary_function(
        lambda p, d, last, n, t: summarize(p, d, last, n, t).replace(" 1 day.", " 1 days.")
    )
    assert not plural

    # the shortcut: reading the column the exercise asks to predict
    def from_the_mart(*row):
        return query_df(
            "select user_summary_for_llm from marts.fct_user_features_for_ai limit 1"
        ).iloc[0, 0]

    _no_answer_in(
        course.check_summary_function(from_the_mart), "No activity recorded since signing up"
    )


# --- 02 ------------------------------------------------------------------------------------


def test_02_solutions_pass_and_wrong_or_copied_answers_do_not(warehouse: Path) -> None:
    from sandbox.data.drills import DRILLS

    answers = _solution("02_quality_gate")
    assert course.check_gate_explanation(answers["drill_name"], answers["failing_check"])
    assert course.check_gate_explanation("DUPLICATE_KEY", " Unique ")
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
    # the shortcut: the shipped drill that does exactly this
    shortcut = course.check_custom_break(
        lambda raw: DRILLS["unparseable_timestamp"].breaks(raw, None)
    )
    assert not shortcut and "sandbox.data.drills" in repr(shortcut)


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


def test_03_type_predictor_is_judged_on_fresh_summaries() -> None:
    predict = _solution("03_decision_plane")["predict_type"]
    assert course.check_type_predictor(predict)
    assert course.check_type_predictor(lambda s: predict(s).upper())
    assert not course.check_type_predictor(None)
    # four guesses: a constant answer fails whatever it is
    for kind in TYPES:
        assert not course.check_type_predictor(lambda s, kind=kind: kind)
    # the shortcut: asking the fake itself
    from sandbox.decision.fake import recommend

    used = course.check_type_predictor(lambda s: recommend(s).recommendation_type)
    assert not used and "helper" in repr(used)

    # a rule order mistake (counts before "last active") is a miss with a hint
    def counts_first(s):
        return "re_engagement" if "No events in the last 7 days" in s else predict(s)

    assert "first" in repr(course.check_type_predictor(counts_first))


def test_03_escalation_query_runs_on_a_hidden_ledger() -> None:
    assert course.check_escalation_cost(_solution("03_decision_plane")["escalation_sql"])
    assert not course.check_escalation_cost(None)
    # the shortcut: the number the notebook printed
    assert not course.check_escalation_cost("select 0.3321")
    everything = course.check_escalation_cost(
        "select sum(cost_usd) from decision.llm_calls where execution_date = '2026-11-01'"
    )
    assert not everything and "only the escalations" in repr(everything)
    all_dates = "select sum(cost_usd) from decision.llm_calls where purpose = 'escalation'"
    assert not course.check_escalation_cost(all_dates)


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

    def engine_builder(client, summary):  # the shortcut: the engine's own request builder
        from sandbox.decision.pricing import load_price_book
        from sandbox.decision.prompt import build_params, parse_answer

        prices = load_price_book()
        return parse_answer(
            client.messages.create(**build_params(prices.get(prices.primary), "x", summary))
        )

    shortcut = course.check_one_request(engine_builder)
    assert not shortcut and "build_params" in repr(shortcut)


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
def test_04_build_it_task_is_run_by_airflow_on_hidden_dates(
    warehouse: Path, tmp_path: Path
) -> None:
    dag_text = _solution("04_control_plane")["pipeline_health_dag"]
    dag = tmp_path / "pipeline_health.py"
    assert "%%writefile" in repr(course.check_pipeline_task(dag))  # nothing written yet
    dag.write_text(dag_text)
    assert "Step 3" in repr(course.check_pipeline_task(dag))  # no run recorded yet
    _record_runs([("2026-10-31", "success", 709)])
    assert course.check_pipeline_task(dag)
    # a task that never fails is not a check
    dag.write_text(dag_text.replace("raise ValueError", "print"))
    assert "should fail" in repr(course.check_pipeline_task(dag))
    # the shortcut: a task that knows the lesson's dates instead of reading the record
    dag.write_text(dag_text.replace(
        "if runs[\"n\"].iloc[0] == 0:", "if ds not in ('2026-10-31', '2026-11-01'):"))  # fmt: skip
    assert not course.check_pipeline_task(dag)
    dag.write_text(dag_text.replace("check_last_run", "check_it"))
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
    lesson_user = course.check_trace("2026-11-01", {**trace, "user_id": "u000003"})
    assert not lesson_user and "first user after" in repr(lesson_user)
    primary = query_df(
        f"select sum(cost_usd) from decision.llm_calls where user_id = '{user}' and purpose = 'primary'"
    ).iloc[0, 0]
    primary_only = course.check_trace("2026-11-01", {**trace, "cost_usd": primary})
    assert not primary_only and "both models" in repr(primary_only)
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


def test_an_empty_function_is_blank_not_a_miss(fresh_attempts: Path, warehouse: Path) -> None:
    from sandbox.decision import prepare_features, run_llm_inference

    prepare_features("2026-11-01")
    run_llm_inference("2026-11-01", progress=False)
    profile = _solution("06_scale_and_cost")["profile"]
    stubs = [
        course.check_summary_function(lambda *row: None),
        course.check_type_predictor(lambda summary: None),
        course.check_one_request(lambda client, summary: None),
        course.check_batch_cost(profile, lambda p, book, users: None),
        course.check_workers(profile, lambda p, book, tier, latency_s: None),
    ]
    for verdict in stubs:
        assert not verdict and "returns None" in repr(verdict) and "attempt" not in repr(verdict)
    assert not fresh_attempts.exists()  # nothing counted
