"""``ops.eval_runs`` and ``ops.eval_cases``: every evaluation kept in the warehouse, one row per
run and one per golden case, so a change in agreement traces back to the cases that moved."""

from __future__ import annotations

import json
from dataclasses import asdict, fields

import pandas as pd

from sandbox.evals.runner import CaseResult, EvalRun
from sandbox.warehouse import connect

DDL = """
        create schema if not exists ops;
        create table if not exists ops.eval_runs (
            eval_run_id varchar not null primary key,
            evaluated_at timestamp not null,
            llm varchar not null,
            model varchar not null,
            prompt_version varchar not null,
            golden_inputs_sha varchar not null,
            summaries_sha varchar not null,
            cases bigint not null,
            skipped bigint not null,
            agreement double not null,
            invalid_rate double not null,
            input_tokens bigint not null,
            output_tokens bigint not null,
            tokens_per_row double not null,
            cost_usd double not null,
            cost_per_row_usd double not null,
            precision_json varchar not null,
            recall_json varchar not null,
            confusion_json varchar not null,
            elapsed_s double not null,
            accepted boolean not null
        );
        create table if not exists ops.eval_cases (
            eval_run_id varchar not null,
            user_id varchar not null,
            case_name varchar not null,
            segment varchar not null,
            acceptable varchar not null,
            answer_type varchar,
            confidence_score double,
            status varchar not null,
            error_class varchar,
            agrees boolean not null,
            input_tokens bigint not null,
            output_tokens bigint not null,
            cost_usd double not null,
            user_summary_for_llm varchar not null,
            primary key (eval_run_id, user_id)
        )"""


def record_eval(run: EvalRun, *, accepted: bool = False) -> None:
    """Write one evaluation and its cases (one transaction)."""
    row = asdict(run.scores)
    for name in ("precision", "recall", "confusion"):
        row[f"{name}_json"] = json.dumps(row.pop(name))
    row.update(
        eval_run_id=run.eval_run_id,
        evaluated_at=run.evaluated_at,
        llm=run.llm,
        model=run.model,
        prompt_version=run.prompt_version,
        golden_inputs_sha=run.golden.inputs_sha,
        summaries_sha=run.golden.summaries_sha,
        skipped=run.skipped,
        elapsed_s=run.elapsed_s,
        accepted=accepted,
    )
    cases = pd.DataFrame(run.results, columns=[f.name for f in fields(CaseResult)]).rename(
        columns={"case": "case_name", "summary": "user_summary_for_llm"}
    )
    cases["acceptable"] = cases["acceptable"].map("|".join)
    cases["agrees"] = [r.agrees for r in run.results]
    cases["eval_run_id"] = run.eval_run_id
    with connect() as con:
        con.execute(DDL)
        con.execute("begin")
        con.register("run_row", pd.DataFrame([row]))
        con.register("case_rows", cases)
        con.execute("insert into ops.eval_runs by name select * from run_row")
        con.execute("insert into ops.eval_cases by name select * from case_rows")
        con.execute("commit")
