"""Run both DAGs for a list of dates with ``dag.test()`` and report what happened, as data.

``run_pipeline`` is what ``sandbox run`` and the notebooks call. For each date it runs
``dbt_production`` and then ``ai_recommendation_pipeline`` for the same logical date
(02:00 UTC, the schedule's time) against the SQLite metadata DB under ``.airflow/``, so the
runs show up in the Airflow UI afterwards, as the scheduler would have recorded them:

- every run is kept: a re-run of a date is a new DAG run with its own run id (``dag.test()``
  alone deletes the date's earlier run and clears its task instances). Airflow allows one run
  per DAG and logical date, so the earlier run hands its logical date to the new one and
  keeps everything else (tasks, logs, XComs, a data interval that still names the date);
- a run's start and end are the wall-clock times it ran (``dag.test()`` alone starts it at
  its logical date, so the UI showed durations of weeks);
- each task's output goes to its own log file in Airflow's layout
  (``dag_id=…/run_id=…/task_id=…/attempt=N.log`` under the logs folder), where the UI's log
  reader finds it; ``.airflow/logs/sandbox-run.log`` keeps everything in one file too.

SIGTERM or Ctrl-C stops the run cleanly (:class:`Interrupted`): the running task is asked to
stop (no new LLM request), no further task starts, and the unfinished runs are marked failed.
The caller gets :class:`RunReport` objects.

Local runs shorten four waits unless you set them yourself: the DAGs run one after the
other, so when the sensor starts the dbt DAG has already finished and waiting an hour cannot
change the outcome (``SANDBOX_SENSOR_TIMEOUT_S`` = 5, ``SANDBOX_SENSOR_POKE_S`` = 1,
``SANDBOX_RETRY_DELAY_S`` = 5), and a batch is polled every second
(``SANDBOX_BATCH_POKE_S`` = 1). Production keeps the DAG files' defaults.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable, Iterator
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
BATCH_TASK = "wait_for_batch"
DRIFT_TASK = "check_drift"
AI_TASKS = (
    SENSOR_TASK, "prepare_features", "run_llm_inference", BATCH_TASK, "write_results", DRIFT_TASK
)  # fmt: skip
LLM_CHOICES = ("mock", "anthropic")
RUN_HOUR_UTC = 2

LOCAL_WAITS = {
    "SANDBOX_SENSOR_TIMEOUT_S": "5",
    "SANDBOX_SENSOR_POKE_S": "1",
    "SANDBOX_RETRY_DELAY_S": "5",
    "SANDBOX_BATCH_POKE_S": "1",
}
EXIT_CODES = {"success": 0, "partial": 3, "budget": 3, "gate_blocked": 1, "failed": 1}
"""``sandbox run``'s exit status per run status (the worst date wins), as ``sandbox infer``;
a successful run the drift watch flagged exits 3 too (published, but look before trusting)."""


class Interrupted(SandboxError):
    """SIGTERM or Ctrl-C stopped ``sandbox run``; ``message`` says what was kept."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


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
    def status(self) -> str:
        """``success``, ``partial``, ``budget``, ``gate_blocked`` or ``failed`` (as recorded in
        ``ops.pipeline_runs``, else from the task states)."""
        if self.results and self.results.get("status"):
            return str(self.results["status"])
        if self.gate_blocked:
            return "gate_blocked"
        return "success" if self.ok else "failed"

    @property
    def drift(self) -> str | None:
        """The drift watch's verdict in ``ops.pipeline_runs`` (``ok``, ``drift``,
        ``insufficient_history``, ``error``), None when it did not run."""
        return (self.results or {}).get("drift_status")

    @property
    def exit_code(self) -> int:
        """0 success, 3 partial, budget or drift, 1 gate blocked or failed."""
        code = EXIT_CODES.get(self.status, 1)
        return 3 if code == 0 and self.drift not in (None, "ok", "insufficient_history") else code

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
            # the gate message above says why dbt_run failed, the drift line below the watch's
            if task_id not in (DBT_TASK, DRIFT_TASK) or not self.drift:
                lines.append(f"{task_id} failed: {message.splitlines()[0]}")
        if self.build and self.build.get("rows"):
            b = self.build
            lines.append(
                f"data plane {self.execution_date}: {b.get('models')} models and "
                f"{b.get('data_tests')} data tests passed; "
                + ", ".join(f"{name} {count:,}" for name, count in b["rows"].items())
            )
        if self.results:
            from sandbox.decision.summary import SIMULATED_COST

            r = self.results
            offline = (self.inference or {}).get("llm") == "mock"
            lines.append(
                f"results {self.execution_date}: {r['status']}: {r['rows_written']} recommendations"
                f" published, {r['failures']} failed, {r.get('rows_pending') or 0} pending,"
                f" {r['llm_requests']} LLM requests, cost ${r['cost_usd']:.4f}"
                + (f" ({SIMULATED_COST})" if offline else "")
                + (f" ({r['detail']})" if r.get("detail") else "")
            )
            if self.drift:
                lines.append(f"drift watch {self.execution_date}: {self.drift.upper()}: "
                             f"{r.get('drift_detail') or ''}".rstrip())  # fmt: skip
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
        inference=_xcom(ai_run.run_id, AI_DAG, BATCH_TASK, "return_value")
        or _xcom(ai_run.run_id, AI_DAG, "run_llm_inference", "return_value"),
        build=_xcom(dbt_run.run_id, DBT_DAG, DBT_TASK, "return_value"),
        results=_results_row(ai_run.run_id),
        log_file=log,
    )


def task_log_path(ti, try_number: int | None = None) -> Path:
    """Where Airflow's log reader looks for one attempt of a task (its default
    ``[logging] log_filename_template``, under the logs folder)."""
    from sandbox.control.airflow_env import log_dir

    parts = [f"dag_id={ti.dag_id}", f"run_id={ti.run_id}", f"task_id={ti.task_id}"]
    if (ti.map_index or -1) >= 0:
        parts.append(f"map_index={ti.map_index}")
    attempt = try_number if try_number is not None else ti.try_number
    return log_dir().joinpath(*parts, f"attempt={attempt}.log")


def _new_dagrun(*, dag, start_date=None, **kwargs):
    """``dag.test()``'s get_or_create_dagrun without the delete: a new run, started now.

    Airflow's metadata DB allows one run per DAG and logical date, so the earlier run of the
    date keeps its run id, tasks, logs, XComs and data interval (which still names the date)
    and hands its logical date over to the new run.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType
    from sqlalchemy import update

    session = kwargs["session"]
    session.execute(
        update(DagRun)
        .where(DagRun.dag_id == dag.dag_id, DagRun.logical_date == kwargs["logical_date"])
        .values(logical_date=None)
    )
    session.commit()
    return dag.create_dagrun(
        **kwargs,
        run_type=DagRunType.MANUAL,
        state=DagRunState.RUNNING,
        start_date=datetime.now(UTC),
    )


@contextlib.contextmanager
def _recorded_like_the_scheduler(run_log: Path, stopping) -> Iterator[None]:
    """Patch ``dag.test()`` so its runs are recorded as a scheduler would record them.

    Keeps earlier runs of the date (no delete, no clearing), starts the run at the wall-clock
    time, writes each task's output to its own log file, and, once a stop was requested
    (``stopping()`` true), runs no further task: it is marked failed instead.
    """
    from unittest import mock

    import airflow.models.dagrun as dagrun_module
    import airflow.sdk.definitions.dag as sdk_dag
    from airflow.serialization.definitions.dag import SerializedDAG
    from airflow.utils.state import TaskInstanceState

    from sandbox.control.capture import captured_output, log_file

    original = sdk_dag._run_task

    def run_task(*, ti, task, run_triggerer=False):
        if stopping():
            ti.set_state(TaskInstanceState.FAILED)
            return None
        path = task_log_path(ti)
        start = path.stat().st_size if path.exists() else 0
        handler = signal.getsignal(signal.SIGTERM)
        try:
            with captured_output(path):
                return original(ti=ti, task=task, run_triggerer=run_triggerer)
        finally:
            signal.signal(signal.SIGTERM, handler)  # the task runner installs its own
            with path.open(encoding="utf-8", errors="replace") as written:
                written.seek(start)
                log_file(run_log).write(written.read())

    with (
        mock.patch.object(sdk_dag, "_run_task", run_task),
        mock.patch.object(dagrun_module, "get_or_create_dagrun", _new_dagrun),
        mock.patch.object(SerializedDAG, "clear_dags", lambda *a, **k: 0),
    ):
        yield


@contextlib.contextmanager
def _stop_on_signals(received: list[int]) -> Iterator[None]:
    """SIGTERM and SIGINT set :data:`sandbox.control.tasks.STOP` (no new LLM request, no new
    task) and are remembered in ``received``; a second signal raises KeyboardInterrupt (stop
    now). (While a task runs, Airflow's task runner handles SIGTERM itself and calls the
    task's ``on_kill``, which does the same: see :func:`sandbox.control.tasks.request_stop`.)"""
    from sandbox.control.tasks import request_stop

    def handle(signum, frame) -> None:
        received.append(signum)
        request_stop()
        if len(received) > 1:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _close_unfinished(day: date) -> list[str]:
    """Mark the runs of ``day`` left running by an interruption (and their unfinished tasks)
    failed, so the UI does not show them running forever; returns their run ids."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, State, TaskInstanceState

    closed = []
    with create_session() as session:
        runs = session.query(DagRun).filter(
            DagRun.dag_id.in_([DBT_DAG, AI_DAG]),
            DagRun.logical_date == logical_date(day),
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


def _interrupted_message(signum: int, day: date, reports: list[RunReport]) -> str:
    """One line: what stopped the run and what was kept."""
    from sandbox.warehouse import connect, table_exists

    kept = 0
    with contextlib.suppress(Exception), connect(read_only=True) as con:
        if table_exists(con, "decision.recommendations_staging"):
            kept = con.execute(
                "select count(*) from decision.recommendations_staging where execution_date = ?",
                [day],
            ).fetchone()[0]
    done = ", ".join(str(r.execution_date) for r in reports) or "none"
    return (
        f"stopped by {signal.Signals(signum).name} during {day}: no new LLM request or task "
        f"after it; {kept} answers for {day} kept in decision.recommendations_staging "
        f"(a re-run resumes there); dates finished before: {done}"
    )


@holds_step("sandbox run")
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

    ``llm`` is ``mock`` or ``anthropic`` (default: ``SANDBOX_LLM``, else ``mock``); ``model``,
    ``batch_size``, ``max_cost_usd`` and ``mode`` are passed as DAG params (defaults:
    ``SANDBOX_MAX_COST_USD``, ``SANDBOX_INFER_MODE``). ``on_report`` is called with each
    date's report as soon as it is ready. Raises :class:`SandboxError` only for problems that
    stop every run (DAG import errors, a locked warehouse), and :class:`Interrupted` on
    SIGTERM or Ctrl-C; failed tasks are reported, not raised.
    """
    from sandbox.control import airflow_env
    from sandbox.control.capture import captured_output
    from sandbox.control.tasks import STOP, infer_settings
    from sandbox.warehouse import ensure_writable

    days = [parse_date(dates)] if isinstance(dates, date | str) else [parse_date(d) for d in dates]
    if llm is not None and llm not in LLM_CHOICES:
        raise SandboxError(f"unknown LLM {llm!r}: use one of {', '.join(LLM_CHOICES)}")
    infer_settings(max_cost_usd, mode)  # a bad value or variable fails here, before any run
    conf = {
        k: v
        for k, v in {
            "llm": llm, "model": model, "batch_size": batch_size,
            "max_cost_usd": max_cost_usd, "mode": mode,
        }.items()
        if v is not None
    }  # fmt: skip
    ensure_writable()  # fail now, with the lock holder's PID, rather than inside a task
    airflow_env.ensure_migrated()
    log = airflow_env.log_dir() / "sandbox-run.log"
    waits = {k: v for k, v in LOCAL_WAITS.items() if not os.environ.get(k)}

    import airflow.sdk  # noqa: F401  (configures logging before the capture, quietly)

    reports: list[RunReport] = []
    with environment(waits), captured_output(log, truncate=True):
        dags = _load_dags(airflow_env.DAGS_FOLDER)
    STOP.clear()
    received: list[int] = []
    with _stop_on_signals(received), _recorded_like_the_scheduler(log, STOP.is_set):
        for day in days:
            try:
                with environment(waits), captured_output(log):
                    when = logical_date(day)
                    print(f"===== sandbox run {day} (logical date {when.isoformat()}) =====")
                    dbt_run = dags[DBT_DAG].test(logical_date=when)
                    ai_run = None if STOP.is_set() else dags[AI_DAG].test(
                        logical_date=when, run_conf=conf or None
                    )  # fmt: skip
            except KeyboardInterrupt:
                STOP.set()
            if STOP.is_set():
                signum = received[0] if received else signal.SIGTERM  # via the task's on_kill
                _close_unfinished(day)
                raise Interrupted(signum, _interrupted_message(signum, day, reports))
            report = _report(day, dbt_run, ai_run, log)
            reports.append(report)
            if on_report is not None:
                on_report(report)
    return reports
