"""What ``sandbox run`` reports for one date: the task states, the gate, the results."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date

from sandbox.control.names import AI_DAG, DBT_DAG, DBT_TASK, DRIFT_TASK, EXIT_CODES, INFER_TASK
from sandbox.control.runs import describe_gate


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
            what = describe_gate(self.gate_failures)
            return f"gate blocked inference for {self.execution_date}: {what}"
        reason = self.errors.get(DBT_TASK) or f"it ended {self.state(DBT_DAG, DBT_TASK)}"
        return (
            f"{DBT_DAG}.{DBT_TASK} did not succeed for {self.execution_date} "
            f"({reason.splitlines()[0]}), so the sensor blocked inference"
        )

    def render(self) -> str:
        """The task table, then the gate's verdict or the results, for a terminal."""
        lines = [render_tasks(self.tasks)]
        if (gate := self.gate_message()) is not None:
            lines.append(gate)
            if self.state(AI_DAG, INFER_TASK) in (None, "upstream_failed", "skipped"):
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

    columns = list(TaskState.__dataclass_fields__)
    return pd.DataFrame([asdict(t) for r in reports for t in r.tasks], columns=columns)
