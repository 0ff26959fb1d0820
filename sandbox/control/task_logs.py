"""Each task attempt's output in its own log file under ``dag.test()``, via Airflow's listeners.

:class:`TaskLogs` (the public ``on_task_instance_*`` hooks) captures each attempt into the
file the UI's log reader opens, then appends it to the run's log.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

from airflow.listeners import hookimpl

from sandbox.control.airflow_env import log_dir
from sandbox.control.capture import captured_output, log_file


def task_log_path(ti, try_number: int | None = None) -> Path:
    """Where Airflow's log reader looks for one attempt of a task (its default
    ``[logging] log_filename_template``, under the logs folder)."""
    parts = [f"dag_id={ti.dag_id}", f"run_id={ti.run_id}", f"task_id={ti.task_id}"]
    if (ti.map_index or -1) >= 0:
        parts.append(f"map_index={ti.map_index}")
    attempt = try_number if try_number is not None else ti.try_number
    return log_dir().joinpath(*parts, f"attempt={attempt}.log")


class TaskLogs:
    """The listener: capture a running attempt into its log file, copy it to ``run_log``."""

    def __init__(self, run_log: Path) -> None:
        self.run_log = run_log
        self.sigterm = signal.getsignal(signal.SIGTERM)
        self.open: tuple[contextlib.ExitStack, Path, int] | None = None

    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance) -> None:
        self.close()
        path = task_log_path(task_instance)
        start = path.stat().st_size if path.exists() else 0
        stack = contextlib.ExitStack()
        stack.enter_context(captured_output(path))
        self.open = (stack, path, start)

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance) -> None:
        self.close()

    @hookimpl
    def on_task_instance_failed(self, previous_state, task_instance, error) -> None:
        self.close()

    @hookimpl
    def on_task_instance_skipped(self, previous_state, task_instance) -> None:
        self.close()

    def close(self) -> None:
        """End the running attempt's capture; copy its lines to the run's log."""
        if self.open is None:
            return
        (stack, path, start), self.open = self.open, None
        stack.close()
        signal.signal(signal.SIGTERM, self.sigterm)  # the task runner installs its own
        with path.open(encoding="utf-8", errors="replace") as written:
            written.seek(start)
            log_file(self.run_log).write(written.read())


@contextlib.contextmanager
def task_logs(run_log: Path) -> Iterator[None]:
    """Register :class:`TaskLogs` with Airflow's listener manager for the ``with`` block."""
    from airflow.sdk.listener import get_listener_manager

    listener = TaskLogs(run_log)
    manager = get_listener_manager()
    manager.add_listener(listener)
    try:
        yield
    finally:
        listener.close()
        manager.pm.unregister(listener)
