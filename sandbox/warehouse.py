"""DuckDB connections and the tables that dbt does not own (``decision.*``, ``ops.*``).

DuckDB lets one process write a file at a time. Every helper here opens a connection for
one step and closes it, so a notebook, the CLI and Airflow tasks take turns instead of
locking each other out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from sandbox.config import SandboxError, warehouse_path


class WarehouseBusy(SandboxError):
    """Another process holds the DuckDB file's write lock."""


_LOCK_PID = re.compile(r"PID (\d+)")

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
            failed_at timestamp not null
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
            called_at timestamp not null
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
    "ops.pipeline_runs": """
        create table if not exists ops.pipeline_runs (
            execution_date date not null,
            dag_run_id varchar not null,
            status varchar not null,
            rows_written bigint not null,
            failures bigint not null,
            llm_requests bigint not null,
            cost_usd double not null,
            recorded_at timestamp not null,
            primary key (execution_date, dag_run_id)
        )""",
}


@contextmanager
def connect(read_only: bool = False, path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for one step and close it afterwards.

    Raises :class:`WarehouseBusy` (naming the PID that holds the lock) instead of DuckDB's
    raw lock error, and a clear error when a read-only open finds no warehouse yet.
    """
    path = path or warehouse_path()
    if read_only and not path.exists():
        raise SandboxError(
            f"no warehouse at {path}: build it first with `sandbox build` (or `make pipeline`)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        match = _LOCK_PID.search(str(exc))
        holder = f"PID {match.group(1)}" if match else "another process"
        raise WarehouseBusy(
            f"warehouse is in use by {holder} ({path}): wait for that step to finish, or stop "
            "it (a notebook kernel holding a connection counts), then try again"
        ) from None
    try:
        yield con
    finally:
        con.close()


def ensure_writable() -> None:
    """Fail fast with :class:`WarehouseBusy` when another process holds the write lock."""
    with connect():
        pass


def ensure_tables(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Create the named non-dbt tables (all of them when none are named) if they are missing."""
    for name in names or DDL:
        schema = name.split(".")[0]
        con.execute(f"create schema if not exists {schema}")
        con.execute(DDL[name])


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """True when ``schema.table`` exists in the warehouse."""
    schema, table = name.split(".")
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def checksum(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """An order-independent fingerprint of a table's rows (md5 over the sorted rows)."""
    return con.execute(
        f"select coalesce(md5(string_agg(cast(t as varchar), chr(10) order by cast(t as varchar))), "
        f"'empty') from {table} as t"
    ).fetchone()[0]


def query_df(sql: str, params: list | None = None):
    """Run one read-only query and return a pandas DataFrame (for notebooks and the CLI)."""
    with connect(read_only=True) as con:
        return con.execute(sql, params or []).df()
