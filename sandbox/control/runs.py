"""``ops.pipeline_runs``: one row per run of the AI pipeline (this module owns the table).

Counts are summed over every attempt of the DAG run from the decision plane's public tables,
never from one attempt's XCom; writing waits for the warehouse (:data:`WAIT_S`).
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, date, datetime
from typing import Any

from sandbox.config import SandboxError, parse_date
from sandbox.control.airflow_env import attempt_log
from sandbox.control.names import (
    AI_DAG,
    BATCH_TASK,
    DBT_DAG,
    DBT_TASK,
    DRIFT_TASK,
    DRIFT_XCOM_KEY,
    GATE_XCOM_KEY,
    INFER_TASK,
    SENSOR_TASK,
    SUMMARY_XCOM_KEY,
    WRITE_TASK,
    WRITTEN_XCOM_KEY,
)

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
        rows_done bigint,  -- added
        rows_pending bigint,  -- added
        detail varchar,  -- added
        drift_status varchar,  -- added
        drift_detail varchar,  -- added
        rows_resumed bigint,  -- added
        primary key (execution_date, dag_run_id)
    )"""
WAIT_S = 120.0  # how long writing a row waits for another process to free the warehouse


class RunNotRecorded(SandboxError):
    """The warehouse stayed busy past :data:`WAIT_S`: the run's row could not be written."""


def pull(ti, task_id: str, key: str = "return_value") -> Any:
    """A task's XCom (its return value by default); None where XCom is unreachable."""
    with contextlib.suppress(Exception):  # outside a task runner (a DAG-level callback)
        return ti.xcom_pull(task_ids=task_id, key=key)
    return None


def ensure_table(con) -> None:
    """Create ``ops.pipeline_runs``; add the columns marked "added" to a table made before them."""
    con.execute("create schema if not exists ops")
    con.execute(DDL)
    for column, kind in re.findall(r"(\w+) (\w+),  -- added", DDL):
        con.execute(f"alter table {TABLE} add column if not exists {column} {kind}")


def utc_naive(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC without a timezone, as the warehouse stores timestamps."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def ledger_totals(con, as_of: date, since: datetime | None) -> dict:
    """Requests, cost and answers (``rows_done``) of ``as_of`` since ``since`` (the DAG run's
    start, every attempt), and ``rows_resumed``: answers staged before it (kept)."""
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


def write(row: dict, *, since: datetime | None, drift=None) -> dict:
    """Upsert (and return) the run's row, counted from ``since`` (:func:`ledger_totals`);
    ``drift()``, called under the warehouse lock, returns the drift columns to add."""
    from sandbox.warehouse import WarehouseBusy, connect

    try:
        with connect(wait_s=WAIT_S) as con:
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
            f"the run's row in {TABLE} was not written: {exc} (waited {WAIT_S:g} s): the run "
            "is marked failed; run the date again once the warehouse is free"
        ) from None
    return row


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


def final_summary(ti) -> dict:
    """The run's inference summary: the sensor's (batch collected) or the inference task's."""
    found = pull(ti, BATCH_TASK) or pull(ti, INFER_TASK)  # batch collected, else realtime
    return found or pull(ti, INFER_TASK, SUMMARY_XCOM_KEY) or {}  # a failed attempt's


def run_outcome(summary: dict, written: int | None) -> tuple[str, str]:
    """``(status, detail)`` of a run whose tasks all ran: ``success`` only when inference
    finished every row and something was published."""
    status, left = summary.get("status") or "ok", summary.get("pending_left", 0)
    if status == "partial":
        return "partial", f"{summary.get('failed', 0)} rows failed (decision.inference_failures)"
    if status == "budget":
        return "budget", f"the budget stopped the run with {left} rows left pending"
    if status == "pending":
        return "partial", f"{left} rows left pending (batch_size)"
    if status != "ok":
        return "failed", f"inference ended {status}"
    if not written:
        return "failed", "no recommendation was published for the date"
    if written < (inputs := summary.get("inputs") or 0):
        return "partial", f"{inputs - written} of {inputs} rows of the date are not published"
    return "success", ""


def record_drift(run_id: str, record: dict) -> None:
    """Put a drift verdict on the run's ``ops.pipeline_runs`` row, if it is there yet (when it
    is not, :func:`record_pipeline_run` takes the verdict from XCom as it writes the row)."""
    from sandbox.warehouse import connect

    with connect(wait_s=WAIT_S) as con:
        ensure_table(con)
        con.execute(
            f"update {TABLE} set drift_status = ?, drift_detail = ? where dag_run_id = ?",
            [record.get("status"), record.get("message"), run_id],
        )


def _run_status(context, summary: dict, written) -> tuple[str, str]:
    """``(status, detail)`` of the run whose task of ``context`` failed for good."""
    ti, exception = context["ti"], context.get("exception")
    reason = str(exception or "").partition("\n")[0]
    if ti.task_id == SENSOR_TASK:
        tests = gate_failures_of(context)
        detail = "dbt's quality gate did not pass for this date" + (f": {tests}" if tests else "")
        print(f"gate blocked {context['ds']}: {tests or exception or 'dbt_run did not succeed'}",
              flush=True)  # fmt: skip
        return "gate_blocked", detail
    if ti.task_id == WRITE_TASK:
        status, detail = run_outcome(summary, written)
        if status != "failed" or not reason:
            return status, detail
    if reason:
        return "failed", f"{ti.task_id}: {reason}"
    return "failed", f"{ti.task_id} failed" + (f" ({type(exception).__name__})" if exception else "")


def gate_failures_of(context) -> str:
    """The failing dbt tests of the date's ``dbt_production.dbt_run`` (its XCom), or ""."""
    ti = context["ti"]
    with contextlib.suppress(Exception):  # no logical date, no dbt run: no tests to name
        when = [context["logical_date"]]
        for run_id in ti.get_task_states(dag_id=DBT_DAG, task_ids=[DBT_TASK], logical_dates=when):
            if records := ti.xcom_pull(
                dag_id=DBT_DAG, task_ids=DBT_TASK, key=GATE_XCOM_KEY, run_id=run_id
            ):
                return describe_gate(records)
    return ""


def describe_gate(records: list[dict]) -> str:
    """The failing dbt tests of a ``gate_failures`` XCom, on one line."""
    return "; ".join(r.get("description") or r.get("node") or "?" for r in records)


def _run_started(context) -> datetime | None:
    """When the DAG run of ``context`` started (its ledger rows are counted from then): the
    later of its start and its ``run_after`` (``dag.test()`` starts a run at its logical date)."""
    dag_run = context.get("dag_run")
    moments = [utc_naive(getattr(dag_run, k, None)) for k in ("start_date", "run_after")]
    return max((m for m in moments if m is not None), default=None)


def record_pipeline_run(context, *, succeeded: bool, written: int | None = None) -> str:
    """Upsert one ``ops.pipeline_runs`` row for the run of ``context``; return its status
    (a drift verdict fills ``drift_status``, never ``status``)."""
    ti = context["ti"]
    if ti.task_id == DRIFT_TASK:  # the watch's own failure: flag the run, keep its status
        record = pull(ti, DRIFT_TASK, DRIFT_XCOM_KEY)
        if not record:
            reason = str(context.get("exception") or "").partition("\n")[0] or "failed"
            record = {"status": "error", "message": f"the drift watch did not run: {reason}"}
        record_drift(context["run_id"], record)
        return (read(context["run_id"]) or {}).get("status", "")
    summary = final_summary(ti)
    if written is None:  # a failure callback: what write_results published before it failed
        written = pull(ti, WRITE_TASK, WRITTEN_XCOM_KEY)
    status, detail = ("success", "") if succeeded else _run_status(context, summary, written)
    row = {
        "execution_date": parse_date(context["ds"]),
        "dag_run_id": context["run_id"],
        "status": status,
        "rows_written": int(written or 0),
        "failures": int(summary.get("failed") or 0),
        "rows_pending": int(summary.get("pending_left") or 0),
        "detail": detail,
    }

    def drift() -> dict:  # the watch's verdict, if it pushed one (read under the lock)
        found = pull(ti, DRIFT_TASK, DRIFT_XCOM_KEY)
        return {"drift_status": found["status"], "drift_detail": found["message"]} if found else {}

    row = write(row, since=_run_started(context), drift=drift)
    print(
        f"ops.pipeline_runs: {status}: {row['rows_written']} published, {row['rows_done']} "
        f"answered, {row['rows_resumed']} resumed, {row['failures']} failed, "
        f"{row['llm_requests']} requests, ${row['cost_usd']:.4f} (every attempt of the run)",
        flush=True,
    )
    return status


def close_unfinished(who: str, logical_date: datetime | None = None) -> list[str]:
    """Close the DAG runs ``who`` left running (of ``logical_date``, else all): each cut task is
    marked failed with a line in its log, each failed AI run gets its row unless it has one."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, State, TaskInstanceState

    lines, stopped = [], []
    event = f"{who} stopped: this task was cut short and is marked failed"
    with create_session() as session:
        query = session.query(DagRun).filter(DagRun.state == DagRunState.RUNNING)
        if logical_date is not None:
            query = query.filter(DagRun.logical_date == logical_date)
        for run in query:
            tis = run.get_task_instances(session=session)
            cut = [ti for ti in tis if ti.state not in State.finished]
            for ti in cut:  # a line in its log, where the UI shows it
                ti.state, ti.end_date = TaskInstanceState.FAILED, datetime.now(UTC)
                log = attempt_log(ti.dag_id, ti.run_id, ti.task_id, max(1, ti.try_number or 1))
                log.parent.mkdir(parents=True, exist_ok=True)
                line = {"timestamp": ti.end_date.isoformat(), "level": "error", "event": event}
                with log.open("a") as out:
                    out.write(json.dumps(line) + "\n")
            ended = "failed" if any(ti.state == "failed" for ti in tis) else "success"
            run.set_state(DagRunState(ended))
            why = "(the scheduler stopped before it did)"
            lines.append(f"marked {run.dag_id} {run.run_id} {ended} {why}")
            if run.dag_id == AI_DAG and ended == "failed":
                stopped.append((run.run_id, run.logical_date.date(), run.start_date))
    for run_id, as_of, started in stopped:
        if read(run_id) is None:  # no failure callback wrote it
            row = {"execution_date": as_of, "dag_run_id": run_id, "status": "failed",
                   "rows_written": 0, "failures": 0, "rows_pending": 0,
                   "detail": f"stopped by {who}'s Ctrl-C / SIGTERM"}  # fmt: skip
            write(row, since=started)
    return lines
