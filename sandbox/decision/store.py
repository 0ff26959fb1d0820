"""The decision plane's tables: freeze inputs, find pending rows, commit results, publish.

Each function opens the warehouse for one step and closes it (DuckDB allows one writing
process per file). Writes go in as one Arrow table per table and per commit
(``INSERT ... BY NAME SELECT * FROM arrow``), never row by row, and every commit is one
transaction: results, failures, ledger rows and batch bookkeeping land together or not at
all, so a killed run loses at most what had not been committed yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa

from sandbox.config import SandboxError
from sandbox.warehouse import DDL, connect, ensure_tables, table_exists

SOURCE_MART = "marts.fct_user_features_for_ai_history"
"""Every published date's audited mart rows, keyed by ``as_of_date`` (publishing D+1 leaves D's)."""
INPUTS = "decision.inference_inputs"
STAGING = "decision.recommendations_staging"
FAILURES = "decision.inference_failures"
CALLS = "decision.llm_calls"
BATCH_JOBS = "decision.batch_jobs"
PUBLISHED = "marts.user_recommendations"
TABLES = (INPUTS, STAGING, FAILURES, CALLS, BATCH_JOBS, PUBLISHED)

_ANSWER_COLUMNS = (
    "recommendation_type",
    "recommendation_text",
    "confidence_score",
    "reasoning",
    "model",
    "prompt_version",
    "escalated",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)


def utcnow() -> datetime:
    """Now in UTC, without tzinfo (how every timestamp column here is stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class InputRow:
    """One frozen input: the user and the only text the model sees."""

    user_id: str
    summary: str
    input_sha: str


@dataclass(frozen=True)
class PendingWork:
    """The rows of a date still to do, and how many inputs and staged rows it has."""

    rows: list[InputRow]
    inputs: int
    staged: int
    in_open_batches: int


def prepare_features(execution_date: date) -> int:
    """Freeze the mart's rows for ``execution_date`` into ``decision.inference_inputs``.

    Delete + insert in one transaction, so running it twice leaves one copy. A staged
    answer whose input changed since (or whose user left the mart) is dropped, so the
    next inference run redoes exactly those rows. Returns the number of frozen rows.
    """
    prepared_at = utcnow()
    with connect() as con:
        if not table_exists(con, SOURCE_MART):
            raise SandboxError(
                f"{SOURCE_MART} does not exist yet: run `sandbox build --date {execution_date}` first"
            )
        dates = [
            r[0]
            for r in con.execute(
                f"select distinct as_of_date from {SOURCE_MART} order by 1"
            ).fetchall()
        ]
        if execution_date not in dates:
            built = ", ".join(str(d) for d in dates) or "no date (it is empty)"
            raise SandboxError(
                f"{SOURCE_MART} holds {built}, not {execution_date}: run "
                f"`sandbox build --date {execution_date}` first"
            )
        ensure_tables(con, *TABLES)
        con.begin()
        try:
            con.execute(f"delete from {INPUTS} where execution_date = ?", [execution_date])
            con.execute(
                f"""
                insert into {INPUTS} by name
                select
                    ?::date as execution_date,
                    user_id,
                    plan_tier,
                    user_summary_for_llm,
                    substr(sha256(user_summary_for_llm), 1, 16) as input_sha,
                    as_of_date as source_as_of_date,
                    ? as source_model,
                    ?::timestamp as prepared_at
                from {SOURCE_MART}
                where as_of_date = ?
                """,
                [execution_date, SOURCE_MART, prepared_at, execution_date],
            )
            con.execute(
                f"""
                delete from {STAGING} s
                where s.execution_date = ?
                  and not exists (
                    select 1 from {INPUTS} i
                    where i.execution_date = s.execution_date
                      and i.user_id = s.user_id
                      and i.input_sha = s.input_sha)
                """,
                [execution_date],
            )
            count = con.execute(
                f"select count(*) from {INPUTS} where execution_date = ?", [execution_date]
            ).fetchone()[0]
            con.commit()
        except BaseException:
            con.rollback()
            raise
    return int(count)


def load_pending(execution_date: date, limit: int | None = None) -> PendingWork:
    """Inputs of the date with no staged row and not waiting in an open Message Batch."""
    with connect() as con:
        ensure_tables(con, *TABLES)
        inputs = con.execute(
            f"select count(*) from {INPUTS} where execution_date = ?", [execution_date]
        ).fetchone()[0]
        if not inputs:
            raise SandboxError(
                f"{INPUTS} has no rows for {execution_date}: freeze them first with "
                f"`sandbox infer --date {execution_date}` (which runs prepare_features) or "
                "prepare_features(date)"
            )
        staged = con.execute(
            f"select count(*) from {STAGING} where execution_date = ?", [execution_date]
        ).fetchone()[0]
        waiting = con.execute(
            f"select count(distinct user_id) from {BATCH_JOBS} "
            "where execution_date = ? and status <> 'ingested'",
            [execution_date],
        ).fetchone()[0]
        sql = f"""
            select i.user_id, i.user_summary_for_llm, i.input_sha
            from {INPUTS} i
            where i.execution_date = ?
              and not exists (select 1 from {STAGING} s
                              where s.execution_date = i.execution_date and s.user_id = i.user_id)
              and not exists (select 1 from {BATCH_JOBS} b
                              where b.execution_date = i.execution_date and b.user_id = i.user_id
                                and b.status <> 'ingested')
            order by i.user_id
        """
        params: list = [execution_date]
        if limit is not None:
            sql += " limit ?"
            params.append(max(0, int(limit)))
        rows = [InputRow(*r) for r in con.execute(sql, params).fetchall()]
    return PendingWork(
        rows=rows, inputs=int(inputs), staged=int(staged), in_open_batches=int(waiting)
    )


def input_rows(execution_date: date, user_ids: Iterable[str]) -> dict[str, InputRow]:
    """The frozen inputs of the given users (to rebuild requests of a stored batch)."""
    ids = list(user_ids)
    if not ids:
        return {}
    with connect() as con:
        found = con.execute(
            f"select user_id, user_summary_for_llm, input_sha from {INPUTS} "
            "where execution_date = ? and list_contains(?, user_id)",
            [execution_date, ids],
        ).fetchall()
    return {r[0]: InputRow(*r) for r in found}


_SCHEMAS: dict[tuple[str, str], pa.Schema] = {}


def _arrow_schema(con: duckdb.DuckDBPyConnection, table: str) -> pa.Schema:
    key = (table, DDL[table])
    if key not in _SCHEMAS:
        _SCHEMAS[key] = con.sql(f"select * from {table} limit 0").to_arrow_table().schema
    return _SCHEMAS[key]


def _insert(
    con: duckdb.DuckDBPyConnection, table: str, rows: list[dict], conflict: str = ""
) -> None:
    if not rows:
        return
    schema = _arrow_schema(con, table)
    data = pa.Table.from_pylist(rows, schema=schema)
    con.register("_decision_rows", data)
    try:
        con.execute(f"insert into {table} by name select * from _decision_rows {conflict}")
    finally:
        con.unregister("_decision_rows")


def commit(
    *,
    results: list[dict] = (),
    failures: list[dict] = (),
    calls: list[dict] = (),
    batch_jobs: list[dict] = (),
    ingested_batch: tuple[str, datetime | None] | None = None,
) -> None:
    """Write one small batch of outcomes in one transaction.

    ``results`` skip users already staged for the date (``on conflict do nothing``), so a
    row can never be staged twice. ``ingested_batch`` = ``(batch_id, ended_at)`` marks a
    Message Batch's rows as ingested in the same transaction as its outcomes.
    """
    if not (results or failures or calls or batch_jobs or ingested_batch):
        return
    with connect() as con:
        con.begin()
        try:
            _insert(con, STAGING, list(results), "on conflict do nothing")
            _insert(con, FAILURES, list(failures))
            _insert(con, CALLS, list(calls), "on conflict do nothing")
            _insert(con, BATCH_JOBS, list(batch_jobs), "on conflict do nothing")
            if ingested_batch:
                batch_id, ended_at = ingested_batch
                con.execute(
                    f"update {BATCH_JOBS} set status = 'ingested', ended_at = coalesce(?, ended_at), "
                    "ingested_at = ? where batch_id = ?",
                    [ended_at, utcnow(), batch_id],
                )
            con.commit()
        except BaseException:
            con.rollback()
            raise


def open_batches(execution_date: date) -> dict[str, list[dict]]:
    """Message Batches of the date whose results are not ingested yet, oldest first."""
    with connect() as con:
        ensure_tables(con, *TABLES)
        cur = con.execute(
            f"select * from {BATCH_JOBS} where execution_date = ? and status <> 'ingested' "
            "order by submitted_at, batch_id, user_id",
            [execution_date],
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    batches: dict[str, list[dict]] = {}
    for row in rows:
        batches.setdefault(row["batch_id"], []).append(row)
    return batches


def write_results(execution_date: date) -> int:
    """Upsert the staged answers of the date into ``marts.user_recommendations``.

    The date's rows end up equal to its staged rows (insert new, update changed, delete
    rows no longer staged), so a second call changes nothing. Returns the date's row count.
    """
    columns = ", ".join(_ANSWER_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*_ANSWER_COLUMNS, "recommended_at"))
    with connect() as con:
        ensure_tables(con, *TABLES)
        con.begin()
        try:
            con.execute(
                f"""
                delete from {PUBLISHED} r
                where r.execution_date = ?
                  and not exists (select 1 from {STAGING} s
                                  where s.execution_date = r.execution_date and s.user_id = r.user_id)
                """,
                [execution_date],
            )
            con.execute(
                f"""
                insert into {PUBLISHED} by name
                select user_id, execution_date, {columns}, created_at as recommended_at
                from {STAGING}
                where execution_date = ?
                on conflict (user_id, execution_date) do update set {updates}
                """,
                [execution_date],
            )
            count = con.execute(
                f"select count(*) from {PUBLISHED} where execution_date = ?", [execution_date]
            ).fetchone()[0]
            con.commit()
        except BaseException:
            con.rollback()
            raise
    return int(count)


def counts(execution_date: date) -> tuple[int, int]:
    """``(inputs, staged)`` row counts of the date."""
    with connect() as con:
        ensure_tables(con, *TABLES)
        inputs = con.execute(
            f"select count(*) from {INPUTS} where execution_date = ?", [execution_date]
        ).fetchone()[0]
        staged = con.execute(
            f"select count(*) from {STAGING} where execution_date = ?", [execution_date]
        ).fetchone()[0]
    return int(inputs), int(staged)


def escalation_share(prompt_version: str, default: float, min_rows: int = 20) -> float:
    """Share of staged rows (this prompt version, any date) that were escalated; ``default`` with little history."""
    with connect() as con:
        ensure_tables(con, *TABLES)
        share, rows = con.execute(
            f"select avg(case when escalated then 1.0 else 0.0 end), count(*) from {STAGING} "
            "where prompt_version = ?",
            [prompt_version],
        ).fetchone()
    return float(share) if rows >= min_rows else default
