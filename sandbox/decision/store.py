"""Reads and writes of the decision tables: pending rows, commits, the journal, open batches.
Each function opens the warehouse briefly; a commit is one transaction of Arrow inserts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa

from sandbox.config import SandboxError, warehouse_path
from sandbox.decision import journal
from sandbox.decision.tables import BATCH_JOBS, CALLS, DDL, FAILURES, INPUTS, STAGING, ensure_tables
from sandbox.warehouse import WarehouseBusy, connect


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
    """The rows of a date still to do; ``held_back``: users whose request the API rejected as
    invalid, with its message; ``resend_reasons``: why rows were sent before, with counts."""

    rows: list[InputRow]
    inputs: int
    staged: int
    in_open_batches: int
    held_back: dict[str, str] = field(default_factory=dict)
    resend_reasons: Counter = field(default_factory=Counter)


def load_pending(as_of: date, limit: int | None, *, prompt_version: str, model: str) -> PendingWork:
    """Inputs of the date with no staged row and not waiting in an open Message Batch, less
    those the API rejected as invalid for the same input, prompt and model."""
    with connect() as con:
        ensure_tables(con)
        inputs, staged, _, waiting = _counts(con, as_of)
        if not inputs:
            raise SandboxError(
                f"{INPUTS} has no rows for {as_of}: freeze them first with "
                f"`sandbox infer --date {as_of}` (which runs prepare_features) or "
                "prepare_features(date)"
            )
        held = _held_back(con, as_of, prompt_version, model)
        sql = f"""
            select i.user_id, i.user_summary_for_llm, i.input_sha
            from {INPUTS} i
            where i.execution_date = ?
              and not exists (select 1 from {STAGING} s
                              where s.execution_date = i.execution_date and s.user_id = i.user_id)
              and not exists (select 1 from {BATCH_JOBS} b
                              where b.execution_date = i.execution_date and b.user_id = i.user_id
                                and b.status in ('creating', 'in_progress'))
              and not list_contains(?, i.user_id)
            order by i.user_id
            limit ?
        """
        rows = [InputRow(*r) for r in con.execute(sql, [as_of, list(held), limit]).fetchall()]
        reasons = _resend_reasons(con, as_of, prompt_version, rows)
    return PendingWork(rows, inputs, staged, waiting, held, reasons)


def _held_back(con, as_of: date, prompt_version: str, model: str) -> dict:
    return dict(
        con.execute(
            f"""
            select f.user_id, any_value(f.error_class || ': ' || f.error_message)
            from {FAILURES} f join {INPUTS} i
              on i.execution_date = f.execution_date and i.user_id = f.user_id
            where f.execution_date = ? and f.permanent and f.resolved_at is null
              and f.input_sha = i.input_sha and f.prompt_version = ? and f.model = ?
            group by f.user_id
            """,
            [as_of, prompt_version, model],
        ).fetchall()
    )


def _resend_reasons(con, as_of: date, prompt_version: str, rows: list) -> Counter:
    """Why rows about to be sent were sent before (the last status of their primary request)."""
    reasons: Counter = Counter()
    last = con.execute(
        f"""
        select status, error_class, count(*) from (
            select user_id, arg_max(status, called_at) as status,
                   arg_max(error_class, called_at) as error_class
            from {CALLS}
            where execution_date = ? and purpose = 'primary' and prompt_version = ?
              and list_contains(?, user_id)
            group by user_id)
        group by all
        """,
        [as_of, prompt_version, [r.user_id for r in rows]],
    ).fetchall()
    for status, error_class, n in last:
        why = {
            "ok": "answered before, but the input changed or the row was not kept",
            "invalid": f"the last answer was invalid ({error_class})",
            "unsafe": "the last answer was held back by the screen (unsafe_content)",
        }.get(status, f"the last request ended in a transient error ({error_class or status})")
        reasons[why] += int(n)
    return reasons


def _query(sql: str, params: list | tuple = ()) -> list[tuple]:
    with connect() as con:
        return con.execute(sql, params).fetchall()


def input_rows(as_of: date, user_ids: Iterable[str]) -> dict[str, InputRow]:
    """The frozen inputs of the given users (to rebuild requests of a stored batch)."""
    found = _query(
        f"select user_id, user_summary_for_llm, input_sha from {INPUTS} "
        "where execution_date = ? and list_contains(?, user_id)",
        [as_of, list(user_ids)],
    )
    return {r[0]: InputRow(*r) for r in found}


_SCHEMAS: dict[tuple[str, str, str], pa.Schema] = {}


def _arrow_schema(con: duckdb.DuckDBPyConnection, table: str) -> pa.Schema:
    key = (str(warehouse_path()), table, DDL[table])
    if key not in _SCHEMAS:
        _SCHEMAS[key] = con.sql(f"select * from {table} limit 0").to_arrow_table().schema
    return _SCHEMAS[key]


_NEW_FAILURES = f"n where not exists (select 1 from {FAILURES} f where f.failure_id = n.failure_id)"


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows, conflict: str) -> None:
    """Insert ``rows`` (dicts) into ``table`` as one Arrow table; ``conflict`` ends the statement."""
    if not rows:
        return
    con.register(
        "_decision_rows", pa.Table.from_pylist(list(rows), schema=_arrow_schema(con, table))
    )
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
    batch_updates: list[tuple[str, str, str]] = (),
) -> None:
    """Write outcomes in one transaction, skipping rows already stored (safe to repeat);
    ``ingested_batch`` marks a batch ingested, ``batch_updates`` names an intent."""
    with connect() as con:
        con.begin()
        try:
            _insert(con, STAGING, results, "on conflict do nothing")
            _insert(con, FAILURES, failures, _NEW_FAILURES)  # it has no key to conflict on
            _insert(con, CALLS, calls, "on conflict do nothing")
            _insert(con, BATCH_JOBS, batch_jobs, "on conflict do nothing")
            for old_id, new_id, status in batch_updates:
                con.execute(
                    f"update {BATCH_JOBS} set batch_id = ?, status = ? where batch_id = ?",
                    [new_id, status, old_id],
                )
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


COMMIT_GIVE_UP_S = 600.0  # how long a commit retries while another process holds the warehouse


def commit_when_free(busy: threading.Event | None = None, **rows) -> None:
    """:func:`commit`, retried for ``COMMIT_GIVE_UP_S`` while busy (``busy`` set meanwhile)."""
    deadline = time.monotonic() + COMMIT_GIVE_UP_S
    while True:
        try:
            commit(**rows)
            break
        except WarehouseBusy:
            if time.monotonic() >= deadline:
                raise
            if busy is not None:
                busy.set()
            time.sleep(0.2)
    if busy is not None:
        busy.clear()


def ingest_journal() -> tuple[int, int, int, int]:
    """Commit what an earlier run left in the journal, then remove it (idempotent; a ``held``
    primary answer is staged as ``not_sent`` unless the row has its final answer); the counts
    of entries, ledger rows, results and failures committed."""
    files = journal.pending_files()
    if not files:
        return 0, 0, 0, 0
    entries = list(journal.read(files))
    calls, failures, results, held = (
        [row for entry in entries for row in entry[key]]
        for key in ("calls", "failures", "results", "held")
    )
    final = {(r["execution_date"], r["user_id"]) for r in results}
    held = {(r["execution_date"], r["user_id"]): r for r in held}  # the last one of a row
    results.extend(row for key, row in held.items() if key not in final)
    with connect() as con:
        ensure_tables(con)  # the journal may outlive the warehouse file
    commit_when_free(results=results, failures=failures, calls=calls)
    journal.forget(files)
    return len(entries), len(calls), len(results), len(failures)


def open_batches(as_of: date) -> dict[str, list[dict]]:
    """Message Batches of the date not ingested yet (``creating`` = an intent), oldest first."""
    with connect() as con:
        rows = con.sql(
            f"select * from {BATCH_JOBS} where execution_date = ? "
            "and status in ('creating', 'in_progress') order by submitted_at, batch_id, user_id",
            params=[as_of],
        ).to_arrow_table()
    batches: dict[str, list[dict]] = {}
    for row in rows.to_pylist():
        batches.setdefault(row["batch_id"], []).append(row)
    return batches


_COUNTS = f"""
    select (select count(*) from {INPUTS} where execution_date = $1),
           (select count(*) from {STAGING} where execution_date = $1),
           (select count(*) from {FAILURES} where execution_date = $1 and resolved_at is null),
           (select count(distinct user_id) from {BATCH_JOBS}
            where execution_date = $1 and status in ('creating', 'in_progress'))
"""


def _counts(con, as_of: date) -> list[int]:
    return [int(n) for n in con.execute(_COUNTS, [as_of]).fetchone()]


def totals(as_of: date) -> tuple[int, int, int]:
    """``(inputs, staged, open failures)`` of the date, resolving failures answered since."""
    with connect() as con:
        # a dead-letter row is resolved once per run, not per commit: open until a run ends
        con.execute(
            f"update {FAILURES} f set resolved_at = ? where f.execution_date = ? "
            f"and f.resolved_at is null and exists (select 1 from {STAGING} s "
            "where s.execution_date = f.execution_date and s.user_id = f.user_id)",
            [utcnow(), as_of],
        )
        inputs, staged, failures, _ = _counts(con, as_of)
    return inputs, staged, failures


def known_batch_ids() -> set[str]:
    """Every Message Batch id ``decision.batch_jobs`` holds (any date)."""
    return {r[0] for r in _query(f"select distinct batch_id from {BATCH_JOBS}")}


def escalation_share(prompt_version: str, default: float) -> float:
    """Share of staged rows of this prompt (any date) escalated; ``default`` below 20 rows."""
    [(share, rows)] = _query(
        f"select avg(escalated::int), count(*) from {STAGING} where prompt_version = ?",
        [prompt_version],
    )
    return float(share) if rows >= 20 else default
