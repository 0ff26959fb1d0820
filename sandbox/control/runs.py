"""``ops.pipeline_runs``: one row per run of the AI pipeline (this module owns the table).

The counts are summed over every attempt of the DAG run from the decision plane's public
tables (``decision.llm_calls``, the ledger, and ``decision.recommendations_staging``),
never from one attempt's XCom: a retried attempt does not hide what the first one spent.
Writing waits for the warehouse (bounded by :data:`WAIT_S`), whichever process holds it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sandbox.config import SandboxError

TABLE = "ops.pipeline_runs"
DDL = """
    create table if not exists ops.pipeline_runs (
        execution_date date not null,
        dag_run_id varchar not null,
        status varchar not null,
        rows_written bigint not null,
        failures bigint not null,
        llm_requests bigint not null,
        cost_usd double not null,
        recorded_at timestamp not null,
        rows_done bigint,
        rows_pending bigint,
        detail varchar,
        drift_status varchar,
        drift_detail varchar,
        rows_resumed bigint,
        primary key (execution_date, dag_run_id)
    )"""
ADDED_COLUMNS = (
    ("rows_done", "bigint"),
    ("rows_pending", "bigint"),
    ("detail", "varchar"),
    ("drift_status", "varchar"),
    ("drift_detail", "varchar"),
    ("rows_resumed", "bigint"),
)
"""Columns added after the table first shipped: added in place to older warehouses."""
WAIT_S = 120.0
"""How long writing a row waits for another process (a task, a notebook) to free the file."""


class RunNotRecorded(SandboxError):
    """The warehouse stayed busy past :data:`WAIT_S`: the run's row could not be written."""


def ensure_table(con) -> None:
    """Create ``ops.pipeline_runs``, adding the columns an older warehouse lacks."""
    con.execute("create schema if not exists ops")
    con.execute(DDL)
    for column, kind in ADDED_COLUMNS:
        con.execute(f"alter table {TABLE} add column if not exists {column} {kind}")


def utc_naive(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC without a timezone, as the warehouse stores timestamps."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def ledger_totals(con, as_of: date, since: datetime | None) -> dict:
    """Requests, cost and rows of ``as_of`` since ``since`` (the DAG run's start), all attempts.

    ``rows_done``: answers staged since then; ``rows_resumed``: staged before it (kept).
    """
    from sandbox.warehouse import table_exists

    since = utc_naive(since) or datetime.min
    totals = {"llm_requests": 0, "cost_usd": 0.0, "rows_done": 0, "rows_resumed": 0}
    if table_exists(con, "decision.llm_calls"):
        requests, cost = con.execute(
            "select count(*), coalesce(sum(cost_usd), 0) from decision.llm_calls"
            " where execution_date = ? and called_at >= ?",
            [as_of, since],
        ).fetchone()
        totals.update(llm_requests=int(requests), cost_usd=round(float(cost), 8))
    if table_exists(con, "decision.recommendations_staging"):
        done, resumed = con.execute(
            "select count(*) filter (where created_at >= ?), count(*) filter (where created_at < ?)"
            " from decision.recommendations_staging where execution_date = ?",
            [since, since, as_of],
        ).fetchone()
        totals.update(rows_done=int(done), rows_resumed=int(resumed))
    return totals


def _connect(wait_s: float):
    """A writable connection that waits up to ``wait_s`` for the warehouse."""
    from sandbox.warehouse import connect

    return connect(wait_s=wait_s)


def write(row: dict, *, since: datetime | None, drift=None, wait_s: float | None = None) -> dict:
    """Upsert the run's row; its counts come from :func:`ledger_totals` since ``since``.

    ``drift`` is called under the warehouse lock and returns the drift columns to add (a
    verdict pushed before is in the row; one pushed after is written by :func:`set_drift`).
    Raises :class:`RunNotRecorded` when the warehouse stays busy. Returns the row written.
    """
    from sandbox.warehouse import WarehouseBusy

    wait_s = WAIT_S if wait_s is None else wait_s
    try:
        with _connect(wait_s) as con:
            ensure_table(con)
            row = {**row, **ledger_totals(con, row["execution_date"], since)}
            row["recorded_at"] = datetime.now(UTC).replace(tzinfo=None)
            row.update(drift() if drift is not None else {})
            con.execute(
                f"insert or replace into {TABLE} ({', '.join(row)})"
                f" values ({', '.join('?' * len(row))})",
                list(row.values()),
            )
    except WarehouseBusy as exc:
        raise RunNotRecorded(
            f"the run's row in {TABLE} was not written: {exc} (waited {wait_s:g} s): the run "
            "is marked failed; run the date again once the warehouse is free"
        ) from None
    return row


def set_drift(run_id: str, columns: dict) -> None:
    """Put a drift verdict on the run's row, if it is there yet."""
    with _connect(WAIT_S) as con:
        ensure_table(con)
        con.execute(
            f"update {TABLE} set drift_status = ?, drift_detail = ? where dag_run_id = ?",
            [columns.get("drift_status"), columns.get("drift_detail"), run_id],
        )


def read(run_id: str) -> dict | None:
    """The row of one DAG run as a dict (None when there is none)."""
    from sandbox.warehouse import connect, table_exists

    with connect(read_only=True) as con:
        if not table_exists(con, TABLE):
            return None
        cursor = con.execute(f"select * from {TABLE} where dag_run_id = ?", [run_id])
        found = cursor.fetchone()
        names = [d[0] for d in cursor.description]
    return None if found is None else dict(zip(names, found, strict=True))
