"""Run both DAGs for a list of dates with ``dag.test()`` and report what happened, as data.

``run_pipeline`` is what ``sandbox run`` and the notebooks call. For each date it runs
``dbt_production`` and then ``ai_recommendation_pipeline`` for the same logical date
(02:00 UTC, the schedule's time) against the SQLite metadata DB under ``.airflow/``, so the
runs show up in the Airflow UI afterwards. Airflow's task logs go to one file
(``.airflow/logs/sandbox-run.log``); the caller gets :class:`RunReport` objects.

Local runs shorten three waits unless you set them yourself: the DAGs run one after the
other, so when the sensor starts the dbt DAG has already finished and waiting an hour cannot
change the outcome (``SANDBOX_SENSOR_TIMEOUT_S`` = 5, ``SANDBOX_SENSOR_POKE_S`` = 1,
``SANDBOX_RETRY_DELAY_S`` = 5). Production keeps the DAG files' defaults.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.config import SandboxError, environment, parse_date
from sandbox.warehouse import holds_step

DBT_DAG = "dbt_production"
AI_DAG = "ai_recommendation_pipeline"
DBT_TASK = "dbt_run"
SENSOR_TASK = "wait_for_dbt_completion"
AI_TASKS = (SENSOR_TASK, "prepare_features", "run_llm_inference", "write_results")
LLM_CHOICES = ("mock", "anthropic")
RUN_HOUR_UTC = 2

LOCAL_WAITS = {
    "SANDBOX_SENSOR_TIMEOUT_S": "5",
    "SANDBOX_SENSOR_POKE_S": "1",
    "SANDBOX_RETRY_DELAY_S": "5",
}


@dataclass(frozen=True)
class TaskState:
    """How one task of one DAG run ended."""

    execution_date: date
    dag_id: str
    task_id: str
    state: str
    tries: int
    duration_s: float | None


@dataclass
class RunReport:
    """Both DAG runs of one execution date: task states, gate failures and results."""

    execution_date: date
    dag_states: dict[str, str]
    tasks: list[TaskState]
    gate_failures: list[dict] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    inference: dict | None = None
    results: dict | None = None
    log_file: Path | None = None
    build: dict | None = None

    @property
    def ok(self) -> bool:
        """True when every task of both DAGs succeeded."""
        return bool(self.tasks) and all(t.state == "success" for t in self.tasks)

    @property
    def gate_blocked(self) -> bool:
        """True when dbt's gate failed, so the AI pipeline never reached the LLM."""
        return bool(self.gate_failures) or self.state(DBT_DAG, DBT_TASK) != "success"

    def state(self, dag_id: str, task_id: str) -> str | None:
        """The final state of one task (``None`` if it has no task instance)."""
        return next(
            (t.state for t in self.tasks if t.dag_id == dag_id and t.task_id == task_id), None
        )

    def gate_message(self) -> str | None:
        """Why the AI pipeline did not run: ``gate blocked inference for D: <failing tests>``
        (or, when dbt_run failed for another reason, that reason); None when dbt succeeded."""
        if not self.gate_blocked:
            return None
        if self.gate_failures:
            what = "; ".join(
                f.get("description") or f.get("node") or "?" for f in self.gate_failures
            )
            return f"gate blocked inference for {self.execution_date}: {what}"
        reason = self.errors.get(DBT_TASK) or f"it ended {self.state(DBT_DAG, DBT_TASK)}"
        return (
            f"{DBT_DAG}.{DBT_TASK} did not succeed for {self.execution_date} "
            f"({reason.splitlines()[0]}), so the sensor blocked inference"
        )

    def records(self) -> list[dict]:
        """One dict per task (DataFrame-ready)."""
        return [asdict(t) for t in self.tasks]

    def render(self) -> str:
        """The task table, then the gate's verdict or the results, for a terminal."""
        lines = [render_tasks(self.tasks)]
        if (gate := self.gate_message()) is not None:
            lines.append(gate)
            if self.state(AI_DAG, "run_llm_inference") in (None, "upstream_failed", "skipped"):
                lines.append("no LLM request was made for this date.")
        for task_id, message in self.errors.items():
            if task_id != DBT_TASK:  # the gate message above already says why dbt_run failed
                lines.append(f"{task_id} failed: {message.splitlines()[0]}")
        if self.build and self.build.get("rows"):
            b = self.build
            lines.append(
                f"data plane {self.execution_date}: {b.get('models')} models and "
                f"{b.get('data_tests')} data tests passed; "
                + ", ".join(f"{name} {count:,}" for name, count in b["rows"].items())
            )
        if self.results and self.results["status"] == "success":
            r = self.results
            lines.append(
                f"results {self.execution_date}: {r['rows_written']} recommendations written,"
                f" {r['failures']} failed, {r['llm_requests']} LLM requests, ${r['cost_usd']:.4f}"
            )
        elif self.results:
            lines.append(f"recorded in ops.pipeline_runs as {self.results['status']}")
        inference = self.inference or {}
        if inference.get("status", "ok") != "ok":
            lines.append(f"inference status: {inference['status']}")
            lines.extend(f"  note: {note}" for note in inference.get("notes", [])[-2:])
        return "\n".join(lines)


def render_tasks(tasks: Iterable[TaskState]) -> str:
    """A fixed-width table: date, DAG, task, state, tries."""
    header = ("date", "dag", "task", "state", "tries")
    rows = [header] + [
        (str(t.execution_date), t.dag_id, t.task_id, t.state, str(t.tries)) for t in tasks
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def task_frame(reports: Iterable[RunReport]):
    """All task states of ``reports`` as one pandas DataFrame."""
    import pandas as pd

    columns = [f for f in TaskState.__dataclass_fields__]
    return pd.DataFrame([r for report in reports for r in report.records()], columns=columns)


def date_range(start: date | str, end: date | str) -> list[date]:
    """Every date from ``start`` to ``end``, both included."""
    first, last = parse_date(start), parse_date(end)
    if last < first:
        raise SandboxError(f"--end {last} is before --start {first}: swap them")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def logical_date(day: date) -> datetime:
    """The logical date (timezone-aware) of the scheduled 02:00 UTC run for ``day``."""
    return datetime(day.year, day.month, day.day, RUN_HOUR_UTC, tzinfo=UTC)


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


def _task_states(day: date, dag_run) -> list[TaskState]:
    order = {t: i for i, t in enumerate((DBT_TASK, *AI_TASKS))}
    tis = sorted(dag_run.get_task_instances(), key=lambda ti: order.get(ti.task_id, 99))
    return [
        TaskState(
            day,
            ti.dag_id,
            ti.task_id,
            str(getattr(ti.state, "value", ti.state) or "none"),
            int(ti.try_number or 0),
            None if ti.duration is None else round(float(ti.duration), 3),
        )
        for ti in tis
    ]


def _results_row(run_id: str) -> dict | None:
    from sandbox.warehouse import connect, table_exists

    with connect(read_only=True) as con:
        if not table_exists(con, "ops.pipeline_runs"):
            return None
        cursor = con.execute("select * from ops.pipeline_runs where dag_run_id = ?", [run_id])
        row = cursor.fetchone()
        names = [d[0] for d in cursor.description]
    return None if row is None else dict(zip(names, row, strict=True))


def _report(day: date, dbt_run, ai_run, log: Path) -> RunReport:
    tasks = _task_states(day, dbt_run) + _task_states(day, ai_run)
    errors = {}
    for t in tasks:
        if t.state == "failed":
            run = dbt_run if t.dag_id == DBT_DAG else ai_run
            message = _xcom(run.run_id, t.dag_id, t.task_id, "error")
            if message is None and t.task_id == SENSOR_TASK:
                message = f"timed out waiting for {DBT_DAG}.{DBT_TASK} to succeed for {day}"
            errors[t.task_id] = message or f"see the task log in {log}"
    return RunReport(
        execution_date=day,
        dag_states={
            DBT_DAG: str(getattr(dbt_run.state, "value", dbt_run.state)),
            AI_DAG: str(getattr(ai_run.state, "value", ai_run.state)),
        },
        tasks=tasks,
        gate_failures=_xcom(dbt_run.run_id, DBT_DAG, DBT_TASK, "gate_failures") or [],
        errors=errors,
        inference=_xcom(ai_run.run_id, AI_DAG, "run_llm_inference", "return_value"),
        build=_xcom(dbt_run.run_id, DBT_DAG, DBT_TASK, "return_value"),
        results=_results_row(ai_run.run_id),
        log_file=log,
    )


@holds_step("sandbox run")
def run_pipeline(
    dates: date | str | Iterable[date | str],
    llm: str | None = None,
    *,
    model: str | None = None,
    batch_size: int | None = None,
    on_report=None,
) -> list[RunReport]:
    """Run ``dbt_production`` then ``ai_recommendation_pipeline`` for each date; report each.

    ``llm`` is ``mock`` or ``anthropic`` (default: ``SANDBOX_LLM``, else ``mock``); ``model``
    and ``batch_size`` are passed as DAG params. ``on_report`` is called with each date's
    report as soon as it is ready. Raises :class:`SandboxError` only for problems that stop
    every run (DAG import errors, a locked warehouse); failed tasks are reported, not raised.
    """
    from sandbox.control import airflow_env
    from sandbox.control.capture import captured_output
    from sandbox.warehouse import ensure_writable

    days = [parse_date(dates)] if isinstance(dates, date | str) else [parse_date(d) for d in dates]
    if llm is not None and llm not in LLM_CHOICES:
        raise SandboxError(f"unknown LLM {llm!r}: use one of {', '.join(LLM_CHOICES)}")
    conf = {k: v for k, v in {"llm": llm, "model": model, "batch_size": batch_size}.items() if v}
    ensure_writable()  # fail now, with the lock holder's PID, rather than inside a task
    airflow_env.ensure_migrated()
    log = airflow_env.log_dir() / "sandbox-run.log"
    waits = {k: v for k, v in LOCAL_WAITS.items() if not os.environ.get(k)}

    import airflow.sdk  # noqa: F401  (configures logging before the capture, quietly)

    reports = []
    with environment(waits), captured_output(log, truncate=True):
        dags = _load_dags(airflow_env.DAGS_FOLDER)
    first = max(dags[DBT_DAG].start_date, dags[AI_DAG].start_date).date()
    if too_early := [d for d in days if d < first]:
        raise SandboxError(
            f"{too_early[0]} is before the DAGs' start date {first}: Airflow creates no tasks "
            "for it. Pick a later date."
        )
    for day in days:
        with environment(waits), captured_output(log):
            when = logical_date(day)
            print(f"===== sandbox run {day} (logical date {when.isoformat()}) =====")
            dbt_run = dags[DBT_DAG].test(logical_date=when)
            ai_run = dags[AI_DAG].test(logical_date=when, run_conf=conf or None)
        report = _report(day, dbt_run, ai_run, log)
        reports.append(report)
        if on_report is not None:
            on_report(report)
    return reports
