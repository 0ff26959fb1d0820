"""The decision plane's tables, keyed by ``execution_date`` and ``user_id``: their DDL and the
columns added since they first shipped (only this module creates or migrates them).
"""

from __future__ import annotations

import re

import duckdb

from sandbox.config import warehouse_path

INPUTS = "decision.inference_inputs"
STAGING = "decision.recommendations_staging"
FAILURES = "decision.inference_failures"
CALLS = "decision.llm_calls"
BATCH_JOBS = "decision.batch_jobs"
PUBLISHED = "marts.user_recommendations"

DDL: dict[str, str] = {
    "decision.inference_inputs": """
        create table if not exists decision.inference_inputs (
            execution_date date not null,
            user_id varchar not null,
            plan_tier varchar,
            user_summary_for_llm varchar not null,
            input_sha varchar not null,
            source_as_of_date date not null,
            source_model varchar not null,
            prepared_at timestamp not null,
            primary key (execution_date, user_id)
        )""",
    "decision.recommendations_staging": """
        create table if not exists decision.recommendations_staging (
            execution_date date not null,
            user_id varchar not null,
            recommendation_type varchar not null,
            recommendation_text varchar not null,
            confidence_score double not null,
            reasoning varchar not null,
            model varchar not null,
            prompt_version varchar not null,
            mode varchar not null,
            escalated boolean not null,
            input_tokens bigint not null,
            output_tokens bigint not null,
            cost_usd double not null,
            input_sha varchar not null,
            run_id varchar not null,
            created_at timestamp not null,
            escalation_status varchar,  -- added
            primary key (execution_date, user_id)
        )""",
    "decision.inference_failures": """
        create table if not exists decision.inference_failures (
            execution_date date not null,
            user_id varchar not null,
            model varchar not null,
            prompt_version varchar not null,
            mode varchar not null,
            purpose varchar not null,
            error_class varchar not null,
            error_message varchar not null,
            raw_text varchar,
            run_id varchar not null,
            failed_at timestamp not null,
            failure_id varchar,  -- added
            input_sha varchar,  -- added
            permanent boolean,  -- added
            resolved_at timestamp  -- added
        )""",
    "decision.llm_calls": """
        create table if not exists decision.llm_calls (
            call_id varchar not null primary key,
            execution_date date not null,
            user_id varchar not null,
            run_id varchar not null,
            model varchar not null,
            mode varchar not null,
            purpose varchar not null,
            status varchar not null,
            error_class varchar,
            attempts bigint not null,
            input_tokens bigint not null,
            output_tokens bigint not null,
            cost_usd double not null,
            latency_ms double,
            batch_id varchar,
            request_id varchar,
            prompt_version varchar not null,
            called_at timestamp not null,
            usage_upper_bound boolean  -- added
        )""",
    "decision.batch_jobs": """
        create table if not exists decision.batch_jobs (
            execution_date date not null,
            user_id varchar not null,
            batch_id varchar not null,
            custom_id varchar not null,
            purpose varchar not null,
            model varchar not null,
            prompt_version varchar not null,
            run_id varchar not null,
            status varchar not null,
            carried_input_tokens bigint not null,
            carried_output_tokens bigint not null,
            carried_cost_usd double not null,
            submitted_at timestamp not null,
            ended_at timestamp,
            ingested_at timestamp,
            input_sha varchar,  -- added
            primary_answer varchar,  -- added
            primary key (batch_id, user_id)
        )""",
    "marts.user_recommendations": """
        create table if not exists marts.user_recommendations (
            user_id varchar not null,
            execution_date date not null,
            recommendation_type varchar not null,
            recommendation_text varchar not null,
            confidence_score double not null,
            reasoning varchar not null,
            model varchar not null,
            prompt_version varchar not null,
            escalated boolean not null,
            input_tokens bigint not null,
            output_tokens bigint not null,
            cost_usd double not null,
            recommended_at timestamp not null,
            primary key (user_id, execution_date)
        )""",
}

_migrated: set[tuple[str, str]] = set()


def ensure_tables(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Create the named tables (default all) and add newer columns (once per table and file)."""
    for name in names or DDL:
        con.execute(f"create schema if not exists {name.split('.')[0]}")
        con.execute(DDL[name])
        key = (str(warehouse_path()), name)
        if key not in _migrated:  # columns marked "added" came after the table first shipped
            for column, kind in re.findall(r"(\w+) (\w+),?  -- added", DDL[name]):
                con.execute(f"alter table {name} add column if not exists {column} {kind}")
            _migrated.add(key)
