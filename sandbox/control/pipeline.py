"""Run both DAGs for a list of dates with Airflow's ``dag.test()``; report each date.

Per-attempt task logs come from a listener (:mod:`sandbox.control.task_logs`); SIGTERM or
Ctrl-C stops cleanly (:class:`Interrupted`); the sensor's waits are short unless set.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
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
    DRIFT_TASK,
    ERROR_XCOM_KEY,
    EXIT_CODES,
    GATE_XCOM_KEY,
    INFER_TASK,
    RUN_HOUR_UTC,
    SENSOR_TASK,
)


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
    tasks: list[TaskState]
    gate_failures: list[dict] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    inference: dict | None = None
    results: dict | None = None
    build: dict | None = None

    @property
    def ok(self) -> bool:
        """True when every task of both DAGs succeeded."""
        return bool(self.tasks) and all(t.state == "success" for t in self.tasks)

    @property
    def status(self) -> str:
        """The status ``ops.pipeline_runs`` recorded, else one from the task states."""
        if (self.results or {}).get("status"):
            return str(self.results["status"])
        return "gate_blocked" if self.gate_blocked else "success" if self.ok else "failed"

    @property
    def drift(self) -> str | None:
        """The drift watch's verdict in ``ops.pipeline_runs``, None when it did not run."""
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
        """Why the AI pipeline did not run (the failing dbt tests); None when dbt succeeded."""
        if not self.gate_blocked:
            return None
        if self.gate_failures:
            what = runs.describe_gate(self.gate_failures)
            return f"gate blocked inference for {self.execution_date}: {what}"
        reason = self.errors.get(DBT_TASK) or f"it ended {self.state(DBT_DAG, DBT_TASK)}"
        return (
            f"{DBT_DAG}.{DBT_TASK} did not succeed for {self.execution_date} "
            f"({reason.splitlines()[0]}), so the sensor blocked inference"
        )

    def render(self) -> str:
        """The task table, then the gate's verdict or the results, for a terminal."""
        rows = [("date", "dag", "task", "state", "tries")] + [
            (str(t.execution_date), t.dag_id, t.task_id, t.state, str(t.tries)) for t in self.tasks
        ]
        widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
        lines = ["  ".join(map(str.ljust, row, widths)).rstrip() for row in rows]
        day, r, b, inference = self.execution_date, self.results, self.build, self.inference or {}
        if (gate := self.gate_message()) is not None:
            lines.append(gate)
            if self.state(AI_DAG, INFER_TASK) in (None, "upstream_failed", "skipped"):
                lines.append("no LLM request was made for this date.")
        # the gate message above says why dbt_run failed, the drift line below the watch's
        lines += [f"{task_id} failed: {message.splitlines()[0]}"
                  for task_id, message in self.errors.items()
                  if task_id not in (DBT_TASK, DRIFT_TASK) or not self.drift]  # fmt: skip
        if b and b.get("rows"):
            counts = ", ".join(f"{name} {count:,}" for name, count in b["rows"].items())
            lines.append(f"data plane {day}: {b.get('models')} models and "
                         f"{b.get('data_tests')} data tests passed; {counts}")  # fmt: skip
        if r:
            from sandbox.decision.summary import SIMULATED_COST

            lines.append(
                f"results {day}: {r['status']}: {r['rows_written']} recommendations published,"
                f" {r['failures']} failed, {r.get('rows_pending') or 0} pending,"
                f" {r['llm_requests']} LLM requests, cost ${r['cost_usd']:.4f}"
                + (f" ({SIMULATED_COST})" if inference.get("llm") == "mock" else "")
                + (f" ({r['detail']})" if r.get("detail") else "")
            )
            if self.drift:
                detail = r.get("drift_detail") or ""
                lines.append(f"drift watch {day}: {self.drift.upper()}: {detail}".rstrip())
        if inference.get("status", "ok") != "ok":
            lines.append(f"inference status: {inference['status']}")
            lines.extend(f"  note: {note}" for note in inference.get("notes", [])[-2:])
        return "\n".join(lines)


def task_frame(reports: Iterable[RunReport]):
    """All task states of ``reports`` as one pandas DataFrame."""
    import pandas as pd

    columns = [f.name for f in fields(TaskState)]
    return pd.DataFrame([asdict(t) for r in reports for t in r.tasks], columns=columns)


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
    if missing := {DBT_DAG, AI_DAG} - set(bag.dags):
        raise SandboxError(f"DAG(s) {', '.join(sorted(missing))} not found in {dags_folder}")
    return bag.dags


def _xcom(dag_run, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=dag_run.run_id, key=key, dag_ids=dag_run.dag_id, task_ids=task_id
        )
        return next((row.value for row in session.scalars(query)), None)


def _task_states(as_of: date, dag_run) -> list[TaskState]:
    order = {t: i for i, t in enumerate((DBT_TASK, *AI_TASKS))}
    tis = sorted(dag_run.get_task_instances(), key=lambda ti: order.get(ti.task_id, 99))
    return [TaskState(as_of, ti.dag_id, ti.task_id, str(ti.state or "none"), ti.try_number or 0,
                      None if ti.duration is None else round(ti.duration, 3))
            for ti in tis]  # fmt: skip


def _report(as_of: date, dbt_run, ai_run, log: Path) -> RunReport:
    tasks = _task_states(as_of, dbt_run) + _task_states(as_of, ai_run)
    errors = {}
    for t in (t for t in tasks if t.state == "failed"):
        message = _xcom(dbt_run if t.dag_id == DBT_DAG else ai_run, t.task_id, ERROR_XCOM_KEY)
        if message is None and t.task_id == SENSOR_TASK:
            message = f"timed out waiting for {DBT_DAG}.{DBT_TASK} to succeed for {as_of}"
        errors[t.task_id] = message or f"see the task log in {log}"
    return RunReport(
        as_of,
        tasks,
        gate_failures=_xcom(dbt_run, DBT_TASK, GATE_XCOM_KEY) or [],
        errors=errors,
        inference=_xcom(ai_run, BATCH_TASK) or _xcom(ai_run, INFER_TASK),
        build=_xcom(dbt_run, DBT_TASK),
        results=runs.read(ai_run.run_id),
    )


def _interrupted_message(signum: int, as_of: date, reports: list[RunReport]) -> str:
    from sandbox.warehouse import connect

    kept = 0
    with contextlib.suppress(Exception), connect(read_only=True) as con:  # no table: 0 kept
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
    max_cost_usd: float | None = None,
    mode: str | None = None,
    on_report=None,
) -> list[RunReport]:
    """Run ``dbt_production`` then ``ai_recommendation_pipeline`` for each date; report each
    (also to ``on_report``, when ready). Failed tasks are reported, not raised; SIGTERM or
    Ctrl-C raises :class:`Interrupted`, what stops every run a :class:`SandboxError`."""
    from sandbox.warehouse import ensure_writable, step_lock

    as_ofs = [parse_date(d) for d in ([dates] if isinstance(dates, date | str) else dates)]
    if llm is not None:
        config.llm_choice(llm)
    config.max_cost_usd(max_cost_usd), config.infer_mode(mode)  # a bad value fails before a run
    given = {"llm": llm, "max_cost_usd": max_cost_usd, "mode": mode}
    conf = {k: v for k, v in given.items() if v is not None}  # the DAG's params
    with step_lock("sandbox run"):
        ensure_writable()  # fail now, with the lock holder's PID, rather than inside a task
        return _run_dates(as_ofs, conf, on_report)


def _run_dates(as_ofs: list[date], conf: dict, on_report) -> list[RunReport]:
    """Both DAGs for each date, in order, under ``dag.test()``; stop cleanly on a signal."""
    from sandbox.control.tasks import STOP

    airflow_env.migrate_home(airflow_env.configure())  # before the first import of airflow
    from sandbox.control.task_logs import captured_output, task_logs

    log = airflow_env.log_dir() / "sandbox-run.log"
    waits = airflow_env.waits(poke_s=1, timeout_s=5, retry_s=5)  # dbt_run has already ended
    import airflow.sdk  # noqa: F401  (configures logging before the capture, quietly)

    log.unlink(missing_ok=True)  # this run's output only
    with environment(waits), captured_output(log):
        dags = _load_dags(airflow_env.DAGS_FOLDER)
    STOP.clear()
    reports: list[RunReport] = []
    received: list[int] = []

    def stop(signum, frame) -> None:  # no new LLM request or task after it; a second: at once
        received.append(signum)
        STOP.set()
        if len(received) > 1:
            raise KeyboardInterrupt

    with contextlib.ExitStack() as stack:
        for sig in (signal.SIGTERM, signal.SIGINT):  # SIGTERM and Ctrl-C, until the block ends
            stack.callback(signal.signal, sig, signal.signal(sig, stop))
        stack.enter_context(task_logs(log))  # after them: it puts ours back after each task
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
                runs.close_unfinished("sandbox run", when)
                raise Interrupted(signum, _interrupted_message(signum, as_of, reports))
            reports.append(_report(as_of, dbt_run, ai_run, log))
            if on_report is not None:
                on_report(reports[-1])
    return reports
