"""Run both DAGs for a list of dates with Airflow's ``dag.test()`` and report what happened.

Per-attempt task logs come from a listener (:mod:`sandbox.control.task_logs`); SIGTERM or
Ctrl-C stops cleanly (:class:`Interrupted`); :data:`LOCAL_WAITS` shortens the sensor's waits.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox import config
from sandbox.config import SandboxError, environment, parse_date
from sandbox.control import airflow_env, runs
from sandbox.control.names import (
    AI_DAG,
    AI_TASKS,
    BATCH_TASK,
    DBT_DAG,
    DBT_TASK,
    ERROR_XCOM_KEY,
    GATE_XCOM_KEY,
    INFER_TASK,
    RUN_HOUR_UTC,
    SENSOR_TASK,
)
from sandbox.control.report import RunReport, TaskState

LOCAL_WAITS = {
    "SANDBOX_SENSOR_TIMEOUT_S": "5",
    "SANDBOX_SENSOR_POKE_S": "1",
    "SANDBOX_RETRY_DELAY_S": "5",
    "SANDBOX_BATCH_POKE_S": "1",
}
class Interrupted(SandboxError):
    """SIGTERM or Ctrl-C stopped ``sandbox run``; ``message`` says what was kept."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


def date_range(start: date | str, end: date | str) -> list[date]:
    """Every date from ``start`` to ``end``, both included."""
    first, last = parse_date(start), parse_date(end)
    if last < first:
        raise SandboxError(f"--end {last} is before --start {first}: swap them")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def logical_date(as_of: date) -> datetime:
    """The logical date (timezone-aware) of the scheduled 02:00 UTC run for ``as_of``."""
    return datetime(as_of.year, as_of.month, as_of.day, RUN_HOUR_UTC, tzinfo=UTC)


def _load_dags(dags_folder: Path) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder))
    if bag.import_errors:
        problems = "; ".join(
            f"{Path(f).name}: {e.strip().splitlines()[-1]}" for f, e in bag.import_errors.items()
        )
        raise SandboxError(f"the DAG files do not import ({problems}): fix them, then run again")
    missing = {DBT_DAG, AI_DAG} - set(bag.dags)
    if missing:
        raise SandboxError(f"DAG(s) {', '.join(sorted(missing))} not found in {dags_folder}")
    return bag.dags


def _xcom(run_id: str, dag_id: str, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run_id, key=key, dag_ids=dag_id, task_ids=task_id)
        ).first()
        return None if row is None else row.value


def _task_states(as_of: date, dag_run) -> list[TaskState]:
    order = {t: i for i, t in enumerate((DBT_TASK, *AI_TASKS))}
    tis = sorted(dag_run.get_task_instances(), key=lambda ti: order.get(ti.task_id, 99))
    return [
        TaskState(
            as_of,
            ti.dag_id,
            ti.task_id,
            str(getattr(ti.state, "value", ti.state) or "none"),
            int(ti.try_number or 0),
            None if ti.duration is None else round(float(ti.duration), 3),
        )
        for ti in tis
    ]


def _report(as_of: date, dbt_run, ai_run, log: Path) -> RunReport:
    tasks = _task_states(as_of, dbt_run) + _task_states(as_of, ai_run)
    errors = {}
    for t in tasks:
        if t.state == "failed":
            run = dbt_run if t.dag_id == DBT_DAG else ai_run
            message = _xcom(run.run_id, t.dag_id, t.task_id, ERROR_XCOM_KEY)
            if message is None and t.task_id == SENSOR_TASK:
                message = f"timed out waiting for {DBT_DAG}.{DBT_TASK} to succeed for {as_of}"
            errors[t.task_id] = message or f"see the task log in {log}"
    return RunReport(
        execution_date=as_of,
        tasks=tasks,
        gate_failures=_xcom(dbt_run.run_id, DBT_DAG, DBT_TASK, GATE_XCOM_KEY) or [],
        errors=errors,
        inference=_xcom(ai_run.run_id, AI_DAG, BATCH_TASK, "return_value")
        or _xcom(ai_run.run_id, AI_DAG, INFER_TASK, "return_value"),
        build=_xcom(dbt_run.run_id, DBT_DAG, DBT_TASK, "return_value"),
        results=runs.read(ai_run.run_id),
    )


@contextlib.contextmanager
def _stop_on_signals(received: list[int]) -> Iterator[None]:
    """SIGTERM and SIGINT set :data:`sandbox.control.tasks.STOP` (no new LLM request, no new
    task) and are remembered in ``received``; a second signal raises KeyboardInterrupt (stop
    now). (While a task runs, Airflow's task runner handles SIGTERM itself and calls the
    task's ``on_kill``, which does the same.)"""
    from sandbox.control.tasks import STOP

    def handle(signum, frame) -> None:
        received.append(signum)
        STOP.set()
        if len(received) > 1:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _close_unfinished(as_of: date) -> list[str]:
    """Mark the runs of ``as_of`` left running by an interruption (and their unfinished tasks)
    failed, so the UI does not show them running forever; returns their run ids."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, State, TaskInstanceState

    closed = []
    with create_session() as session:
        runs = session.query(DagRun).filter(
            DagRun.dag_id.in_([DBT_DAG, AI_DAG]),
            DagRun.logical_date == logical_date(as_of),
            DagRun.state == DagRunState.RUNNING,
        )
        for run in runs:
            for ti in run.get_task_instances(session=session):
                if ti.state not in State.finished:
                    ti.state = TaskInstanceState.FAILED
                    ti.end_date = datetime.now(UTC)
            run.set_state(DagRunState.FAILED)
            closed.append(run.run_id)
    return closed


def _interrupted_message(signum: int, as_of: date, reports: list[RunReport]) -> str:
    """One line: what stopped the run and what was kept."""
    from sandbox.warehouse import connect, table_exists

    kept = 0
    with contextlib.suppress(Exception), connect(read_only=True) as con:
        if table_exists(con, "decision.recommendations_staging"):
            kept = con.execute(
                "select count(*) from decision.recommendations_staging where execution_date = ?",
                [as_of],
            ).fetchone()[0]
    done = ", ".join(str(r.execution_date) for r in reports) or "none"
    return (
        f"stopped by {signal.Signals(signum).name} during {as_of}: no new LLM request or task "
        f"after it; {kept} answers for {as_of} kept in decision.recommendations_staging "
        f"(a re-run resumes there); dates finished before: {done}"
    )


def run_pipeline(
    dates: date | str | Iterable[date | str],
    llm: str | None = None,
    *,
    model: str | None = None,
    batch_size: int | None = None,
    max_cost_usd: float | None = None,
    mode: str | None = None,
    on_report=None,
) -> list[RunReport]:
    """Run ``dbt_production`` then ``ai_recommendation_pipeline`` for each date; report each.

    Raises :class:`SandboxError` for what stops every run, :class:`Interrupted` on SIGTERM or
    Ctrl-C; failed tasks are reported, not raised. ``on_report`` gets each report when ready.
    """
    from sandbox.warehouse import ensure_writable, step_lock

    as_ofs = [parse_date(dates)] if isinstance(dates, date | str) else [parse_date(d) for d in dates]
    if llm is not None:
        config.llm_choice(llm)
    config.max_cost_usd(max_cost_usd), config.infer_mode(mode)  # a bad value fails before a run
    given = {"llm": llm, "model": model, "batch_size": batch_size,
             "max_cost_usd": max_cost_usd, "mode": mode}  # fmt: skip
    conf = {k: v for k, v in given.items() if v is not None}
    with step_lock("sandbox run"):
        ensure_writable()  # fail now, with the lock holder's PID, rather than inside a task
        return _run_dates(as_ofs, conf, on_report)


def _run_dates(as_ofs: list[date], conf: dict, on_report) -> list[RunReport]:
    """Both DAGs for each date, in order, under ``dag.test()``; stop cleanly on a signal."""
    from sandbox.control.tasks import STOP

    airflow_env.ensure_migrated()  # before the first import of airflow
    from sandbox.control.task_logs import captured_output, task_logs

    log = airflow_env.log_dir() / "sandbox-run.log"
    waits = {k: v for k, v in LOCAL_WAITS.items() if not os.environ.get(k)}
    import airflow.sdk  # noqa: F401  (configures logging before the capture, quietly)

    with environment(waits), captured_output(log, truncate=True):
        dags = _load_dags(airflow_env.DAGS_FOLDER)
    STOP.clear()
    reports: list[RunReport] = []
    received: list[int] = []
    with _stop_on_signals(received), task_logs(log):
        for as_of in as_ofs:
            when = logical_date(as_of)
            try:
                with environment(waits), captured_output(log):
                    print(f"===== sandbox run {as_of} (logical date {when.isoformat()}) =====")
                    dbt_run = dags[DBT_DAG].test(logical_date=when)
                    if not STOP.is_set():
                        ai_run = dags[AI_DAG].test(logical_date=when, run_conf=conf or None)
            except KeyboardInterrupt:
                STOP.set()
            if STOP.is_set():
                signum = received[0] if received else signal.SIGTERM  # via the task's on_kill
                _close_unfinished(as_of)
                raise Interrupted(signum, _interrupted_message(signum, as_of, reports))
            reports.append(_report(as_of, dbt_run, ai_run, log))
            if on_report is not None:
                on_report(reports[-1])
    return reports

