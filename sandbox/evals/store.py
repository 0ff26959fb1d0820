"""``ops.eval_runs`` and ``ops.eval_cases``: every evaluation, kept in the warehouse.

One run row per evaluation and one case row per golden case, so a change in agreement
traces back to the cases that moved.
"""

from __future__ import annotations

import json

import pandas as pd

from sandbox.evals.runner import EvalRun
from sandbox.warehouse import connect

RUNS = "ops.eval_runs"
CASES = "ops.eval_cases"

DDL = {
    RUNS: """
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
        )""",
    CASES: """
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
        )""",
}


def ensure_eval_tables(con) -> None:
    """Create ``ops.eval_runs`` and ``ops.eval_cases`` if they are missing."""
    con.execute("create schema if not exists ops")
    for ddl in DDL.values():
        con.execute(ddl)


def _run_row(run: EvalRun, accepted: bool) -> pd.DataFrame:
    """The evaluation's one ``ops.eval_runs`` row."""
    s = run.scores
    return pd.DataFrame(
        [
            {
                "eval_run_id": run.eval_run_id,
                "evaluated_at": run.evaluated_at,
                "llm": run.llm,
                "model": run.model,
                "prompt_version": run.prompt_version,
                "golden_inputs_sha": run.golden.inputs_sha,
                "summaries_sha": run.golden.summaries_sha,
                "cases": s.cases,
                "skipped": run.skipped,
                "agreement": s.agreement,
                "invalid_rate": s.invalid_rate,
                "input_tokens": s.input_tokens,
                "output_tokens": s.output_tokens,
                "tokens_per_row": s.tokens_per_row,
                "cost_usd": s.cost_usd,
                "cost_per_row_usd": s.cost_per_row_usd,
                "precision_json": json.dumps(s.precision),
                "recall_json": json.dumps(s.recall),
                "confusion_json": json.dumps(s.confusion),
                "elapsed_s": run.elapsed_s,
                "accepted": accepted,
            }
        ]
    )


def _case_rows(run: EvalRun) -> pd.DataFrame:
    """One ``ops.eval_cases`` row per golden case the evaluation ran."""
    return pd.DataFrame(
        [
            {
                "eval_run_id": run.eval_run_id,
                "user_id": r.user_id,
                "case_name": r.case,
                "segment": r.segment,
                "acceptable": "|".join(r.acceptable),
                "answer_type": r.answer_type,
                "confidence_score": r.confidence_score,
                "status": r.status,
                "error_class": r.error_class,
                "agrees": r.agrees,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "cost_usd": r.cost_usd,
                "user_summary_for_llm": r.summary,
            }
            for r in run.results
        ],
        columns=[
            "eval_run_id", "user_id", "case_name", "segment", "acceptable", "answer_type",
            "confidence_score", "status", "error_class", "agrees", "input_tokens",
            "output_tokens", "cost_usd", "user_summary_for_llm",
        ],
    )  # fmt: skip


def record_eval(run: EvalRun, *, accepted: bool = False) -> None:
    """Write one evaluation and its cases (one transaction)."""
    run_row = _run_row(run, accepted)
    case_rows = _case_rows(run)
    with connect() as con:
        ensure_eval_tables(con)
        con.execute("begin")
        con.register("run_row", run_row)
        con.register("case_rows", case_rows)
        con.execute(f"insert into {RUNS} by name select * from run_row")
        con.execute(f"insert into {CASES} by name select * from case_rows")
        con.execute("commit")
