"""Helpers for the notebooks: one set-up call, and the checks behind each exercise.

The notebooks call the real planes (``sandbox.data``, ``sandbox.decision``, ``sandbox.control``);
this module only prepares the environment and turns a learner's answer into a clear verdict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sandbox.config import ROOT, SHIPPED_AS_OF_DATE, warehouse_path

SCRATCH_ENV = "SANDBOX_NOTEBOOK_SCRATCH"
"""When set (``make test``, ``make notebooks``), each notebook gets its own scratch warehouse
and Airflow home under this folder, so notebooks never share state or lock each other out."""

AS_OF = SHIPPED_AS_OF_DATE


@dataclass(frozen=True)
class Verdict:
    """The result of an exercise check; prints as one friendly line."""

    ok: bool
    message: str

    def __repr__(self) -> str:
        return ("✅ Correct: " if self.ok else "❌ Not yet: ") + self.message

    def __bool__(self) -> bool:
        return self.ok


def setup(notebook: str) -> None:
    """Prepare the environment for one notebook and print what it will use.

    Offline (mock LLM) unless ``SANDBOX_LLM=anthropic`` was set before the kernel started.
    """
    scratch = os.environ.get(SCRATCH_ENV)
    if scratch:
        folder = Path(scratch) / notebook
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["SANDBOX_WAREHOUSE"] = str(folder / "sandbox.duckdb")
        os.environ["SANDBOX_AIRFLOW_HOME"] = str(folder / "airflow")
        os.environ.pop("SANDBOX_RAW_DIR", None)
    os.environ.setdefault("SANDBOX_LLM", "mock")

    import pandas as pd

    pd.set_option("display.max_colwidth", 140)
    pd.set_option("display.width", 160)
    path = warehouse_path()
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else "a scratch file for this notebook"
    llm = os.environ["SANDBOX_LLM"]
    mode = "offline: a deterministic fake of the Messages API" if llm == "mock" else "the real API"
    print(f"LLM: {llm} ({mode})")
    print(f"warehouse: {where}")
    print(f"as-of date of the shipped data: {AS_OF}")


def _rows(sql: str) -> list[tuple]:
    from sandbox.warehouse import connect

    with connect(read_only=True) as con:
        return con.execute(sql).fetchall()


# --- 01 · data plane -----------------------------------------------------------------------

FADING_SQL = """
select user_id
from marts.fct_user_features_for_ai
where event_count_7d = 0
  and days_since_last_event between 8 and 30
order by user_id
"""


def check_fading_users(answer_sql: str | None) -> Verdict:
    """Exercise 01.1: users active in the last 30 days but not in the last 7."""
    if not answer_sql:
        return Verdict(False, "write your query in `answer_sql` above, then run this cell again.")
    try:
        got = _rows(answer_sql)
    except Exception as exc:  # a learner's SQL error is an answer to explain, not a crash
        return Verdict(False, f"the query did not run: {str(exc).splitlines()[0]}")
    expected = [r[0] for r in _rows(FADING_SQL)]
    ids = sorted(str(r[0]) for r in got)
    if ids == expected:
        return Verdict(True, f"{len(ids)} fading users, exactly the right ones.")
    missing, extra = set(expected) - set(ids), set(ids) - set(expected)
    return Verdict(
        False,
        f"{len(ids)} rows; expected {len(expected)} ({len(missing)} missing, {len(extra)} that "
        "should not be there). Hint: last event between 8 and 30 days ago, none in the last 7.",
    )


def check_predicted_summary(user_id: str, predicted: str | None) -> Verdict:
    """Exercise 01.2: predict a user's ``user_summary_for_llm`` from their feature columns."""
    if not predicted:
        return Verdict(False, "write the sentence you expect in `predicted` above.")
    actual = _rows(
        "select user_summary_for_llm from marts.fct_user_features_for_ai "
        f"where user_id = '{user_id.replace(chr(39), '')}'"
    )
    if not actual:
        return Verdict(False, f"there is no user {user_id!r} in the mart.")
    if predicted.strip() == actual[0][0]:
        return Verdict(True, "character for character — the SQL is that predictable.")
    return Verdict(False, f"the mart says: {actual[0][0]!r}")


# --- 02 · quality gate ---------------------------------------------------------------------


def check_gate_explanation(drill_name: str | None, failing_check: str | None) -> Verdict:
    """Exercise 02.1: pick a drill and name the check that stops it."""
    from sandbox.data.drills import DRILLS

    if not drill_name or not failing_check:
        return Verdict(False, "set `drill_name` and `failing_check` above.")
    if drill_name not in DRILLS:
        return Verdict(False, f"{drill_name!r} is not a drill; pick one of {', '.join(DRILLS)}.")
    expected = DRILLS[drill_name].expect
    if failing_check.strip() == expected:
        return Verdict(True, f"{drill_name} is stopped by {expected}.")
    return Verdict(False, f"{drill_name} is not stopped by {failing_check!r}: run it and read the message.")


def check_custom_break(break_raw) -> Verdict:
    """Exercise 02.2: a function that breaks the raw files so ``event_at``'s not_null test fails."""
    import shutil
    import tempfile

    from sandbox.config import DEFAULT_RAW_DIR
    from sandbox.data import GateFailed, build

    if break_raw is None:
        return Verdict(False, "define `break_raw(raw_dir)` above.")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw"
        shutil.copytree(DEFAULT_RAW_DIR, raw)
        break_raw(raw)
        saved = os.environ.get("SANDBOX_RAW_DIR")
        os.environ["SANDBOX_RAW_DIR"] = str(raw)
        try:
            build(AS_OF)
        except GateFailed as exc:
            names = [f"{f.test} on {f.model}.{f.column}" for f in exc.failures]
            if "not_null on staging.stg_user_events.event_at" in names:
                return Verdict(True, f"the gate said: {'; '.join(names)}.")
            return Verdict(False, f"the gate failed, but on {'; '.join(names)} instead.")
        finally:
            if saved is None:
                os.environ.pop("SANDBOX_RAW_DIR", None)
            else:
                os.environ["SANDBOX_RAW_DIR"] = saved
    return Verdict(False, "the build passed: your change did not break anything the gate checks.")


# --- 03 · decision plane -------------------------------------------------------------------


def check_predicted_type(summary: str, predicted_type: str | None) -> Verdict:
    """Exercise 03.1: predict the offline fake's recommendation type for a summary."""
    from sandbox.decision.fake import recommend

    if not predicted_type:
        return Verdict(False, "set `predicted_type` to one of the four recommendation types.")
    actual = recommend(summary)
    if predicted_type.strip() == actual.recommendation_type:
        return Verdict(True, f"{actual.recommendation_type} (confidence {actual.confidence_score}).")
    return Verdict(False, f"the fake answers {actual.recommendation_type}; re-read the rules table.")


def check_escalation_cost(execution_date, answer_usd: float | None) -> Verdict:
    """Exercise 03.2: the total cost of the escalation requests of a date, from the ledger."""
    if answer_usd is None:
        return Verdict(False, "set `escalation_cost_usd` to the number your query returns.")
    (expected,) = _rows(
        "select coalesce(sum(cost_usd), 0) from decision.llm_calls "
        f"where purpose = 'escalation' and execution_date = '{execution_date}'"
    )[0]
    if abs(float(answer_usd) - expected) < 1e-6:
        return Verdict(True, f"${expected:.4f} went to the capable model.")
    return Verdict(False, f"not {answer_usd}: sum cost_usd over purpose = 'escalation' for {execution_date}.")


# --- 04 · control plane --------------------------------------------------------------------


def check_sensor_target(dag_id: str | None, task_id: str | None) -> Verdict:
    """Exercise 04.1: which DAG and task does the gate sensor wait for?"""
    if not dag_id or not task_id:
        return Verdict(False, "set `sensor_dag_id` and `sensor_task_id` above.")
    if (dag_id.strip(), task_id.strip()) == ("dbt_production", "dbt_run"):
        return Verdict(True, "the sensor waits for dbt_production.dbt_run of the same logical date.")
    return Verdict(False, "look at the sensor's external_dag_id and external_task_id.")


def check_backfill_requests(execution_date, answer: int | None) -> Verdict:
    """Exercise 04.2: how many LLM requests did a re-run of an already finished date send?"""
    if answer is None:
        return Verdict(False, "set `rerun_requests` to the number the ledger shows.")
    (runs,) = _rows(
        "select count(*) from ops.pipeline_runs "
        f"where execution_date = '{execution_date}' and status = 'success'"
    )[0]
    if runs < 2:
        return Verdict(False, f"run {execution_date} a second time first (Step 5), then look again.")
    latest = _rows(
        "select llm_requests from ops.pipeline_runs "
        f"where execution_date = '{execution_date}' order by recorded_at desc limit 1"
    )[0][0]
    if int(answer) == latest:
        return Verdict(True, f"{latest} requests: finished rows are never paid for twice.")
    return Verdict(False, "read llm_requests of the latest ops.pipeline_runs row for that date.")


# --- 00 · start here / 05 · end to end -----------------------------------------------------

PLANE_OF = {
    "decides when the dbt build runs": "control",
    "computes days_since_last_event": "data",
    "chooses between Haiku and Sonnet": "decision",
    "refuses a duplicated user id": "data",
    "retries a 429 from the API": "decision",
    "blocks inference until the tests passed": "control",
}


def check_planes(answers: dict | None) -> Verdict:
    """Exercise 00.1: which plane owns each responsibility?"""
    if not answers or any(v is None for v in answers.values()):
        return Verdict(False, "fill in every value of `answers` with control, data or decision.")
    wrong = [k for k, v in PLANE_OF.items() if str(answers.get(k, "")).strip().lower() != v]
    if not wrong:
        return Verdict(True, "every responsibility sits in exactly one plane.")
    return Verdict(False, f"{len(wrong)} to rethink, e.g. {wrong[0]!r}.")


def check_top_recommendation(execution_date, answer: str | None) -> Verdict:
    """Exercise 00.2: the most frequent recommendation type of a date."""
    if not answer:
        return Verdict(False, "set `top_type` to the type your query returns first.")
    top = _rows(
        "select recommendation_type from marts.user_recommendations "
        f"where execution_date = '{execution_date}' group by 1 order by count(*) desc limit 1"
    )[0][0]
    if answer.strip() == top:
        return Verdict(True, f"{top} is the most common recommendation on {execution_date}.")
    return Verdict(False, "group marts.user_recommendations by recommendation_type and count.")


def check_trace(execution_date, user_id: str | None, answer: dict | None) -> Verdict:
    """Exercise 05.1: trace one recommendation to its prompt version, input and total cost."""
    if not user_id or not answer or all(v is None for v in answer.values()):
        return Verdict(False, "fill in the three values of `trace` above.")
    row = _rows(
        "select r.prompt_version, i.user_summary_for_llm, "
        "(select sum(cost_usd) from decision.llm_calls c where c.execution_date = r.execution_date "
        " and c.user_id = r.user_id and c.status = 'ok' and c.purpose <> 'estimate') "
        "from marts.user_recommendations r join decision.inference_inputs i "
        "using (execution_date, user_id) "
        f"where r.execution_date = '{execution_date}' and r.user_id = '{user_id.replace(chr(39), '')}'"
    )
    if not row:
        return Verdict(False, f"no recommendation for {user_id!r} on {execution_date}.")
    version, summary, cost = row[0]
    problems = []
    if answer.get("prompt_version") != version:
        problems.append("prompt_version")
    if answer.get("user_summary_for_llm") != summary:
        problems.append("user_summary_for_llm")
    if answer.get("cost_usd") is None or abs(float(answer["cost_usd"]) - cost) > 1e-9:
        problems.append("cost_usd (sum every ok request of that user and date in the ledger)")
    if not problems:
        return Verdict(True, f"{user_id}: prompt {version}, ${cost:.6f} over all its requests.")
    return Verdict(False, "check " + ", ".join(problems) + ".")


def check_new_model(project_dir, model_name: str | None) -> Verdict:
    """Exercise 05.2: a new dbt model, added to a copy of the project, built into the warehouse."""
    if not model_name:
        return Verdict(False, "set `new_model` to the name of the model you added.")
    path = Path(project_dir) / "models" / "marts" / f"{model_name}.sql"
    if not path.exists():
        return Verdict(False, f"no file {path.name} in the copied project's models/marts.")
    from sandbox.warehouse import connect, table_exists

    with connect(read_only=True) as con:
        if not table_exists(con, f"marts.{model_name}"):
            return Verdict(False, f"marts.{model_name} is not in the warehouse yet: run the pipeline.")
        rows = con.execute(f"select count(*) from marts.{model_name}").fetchone()[0]
    return Verdict(True, f"marts.{model_name} has {rows} rows — and dags/ was never touched.")


# --- 06 · scale and cost -------------------------------------------------------------------


def build_phases(result) -> dict[str, float]:
    """Split a build's wall time into dbt's fixed start-up and its SQL phase.

    The SQL phase runs from the first node's start to the last node's end in dbt's
    ``run_results.json`` (what the warehouse did, plus dbt's work around each node);
    everything else (parsing the project, the graph, the connection, writing artifacts)
    is start-up, about the same at any size.
    """
    import json
    from datetime import datetime

    from sandbox.data import target_dir

    results = json.loads((target_dir() / "run_results.json").read_text())["results"]
    stamps = [
        (
            datetime.fromisoformat(t["started_at"].rstrip("Z")),
            datetime.fromisoformat(t["completed_at"].rstrip("Z")),
        )
        for r in results
        for t in r["timing"]
    ]
    sql = (max(end for _, end in stamps) - min(start for start, _ in stamps)).total_seconds()
    return {"total_s": result.elapsed_s, "startup_s": max(0.0, result.elapsed_s - sql), "sql_s": sql}


def check_million_user_batch_cost(profile, answer_usd: float | None) -> Verdict:
    """Exercise 06.1: price 1,000,000 users on the cheap model in batch mode, by hand."""
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.projection import TIERS, project

    if answer_usd is None:
        return Verdict(False, "set `batch_cost_1m` to your number (USD).")
    expected = project(
        profile, 1_000_000, book=load_price_book(), tier=TIERS["tier 2"], plan="cheap", mode="batch"
    ).cost_usd
    if abs(float(answer_usd) - expected) <= 0.005 * expected:
        return Verdict(True, f"${expected:,.2f}: tokens x list price x the batch discount, nothing more.")
    if abs(float(answer_usd) - 2 * expected) <= 0.01 * expected:
        return Verdict(False, "that is the realtime price: the Batches API bills half (batch_discount).")
    return Verdict(
        False,
        f"not ${float(answer_usd):,.2f}: (input tokens x input price + output tokens x output "
        "price) per row, per million tokens, x 1,000,000 rows x batch_discount.",
    )


def check_workers_for_tier(profile, tier, answer: int | None, latency_s: float = 2.0) -> Verdict:
    """Exercise 06.2: workers that keep ``tier``'s tightest Haiku limit busy at ``latency_s``."""
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.projection import workers_to_saturate

    if answer is None:
        return Verdict(False, "set `workers_needed` to a whole number of workers.")
    book = load_price_book()
    expected = workers_to_saturate(profile, book=book, tier=tier, latency_s=latency_s, plan="cheap")
    if abs(int(answer) - expected) <= 1:
        return Verdict(True, f"{expected} workers: the tightest limit, per second, times {latency_s:g} s per request.")
    limits = tier.for_model(book.get(book.primary).id)
    if abs(int(answer) - limits.requests_per_minute / 60 * latency_s) <= 1:
        return Verdict(False, "that keeps requests/min busy, but a token limit binds first: divide it by tokens per request.")
    return Verdict(
        False,
        "take the tightest of requests/min, input tokens/min / input tokens per request and "
        "output tokens/min / output tokens per request; per second, times the latency.",
    )
