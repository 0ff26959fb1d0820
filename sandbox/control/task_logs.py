"""Each task attempt's output in its own log file under ``dag.test()``, via Airflow's listeners.

:func:`captured_output` sends all a block prints (streams, logging, fds 1 and 2) to a file that
stays open for the process's life; :class:`TaskLogs` captures each attempt into the UI's file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from airflow.listeners import hookimpl

from sandbox.control.airflow_env import attempt_log

_OPEN: dict[Path, TextIO] = {}


def log_file(path: Path) -> TextIO:
    """The process-wide handle of ``path`` (append mode; a new one once the file is removed)."""
    path = path.resolve()
    file = _OPEN.get(path)
    if file is None or file.closed or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        file = _OPEN[path] = path.open("a", encoding="utf-8", errors="replace", buffering=1)
    return file


@contextlib.contextmanager
def captured_output(path: Path) -> Iterator[Path]:
    """Send all output of the ``with`` block to ``path`` instead of the terminal or cell."""
    file = log_file(path)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = [
        h for lg in loggers for h in getattr(lg, "handlers", ())  # a PlaceHolder has none
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]  # fmt: skip
    previous = []
    for handler in handlers:
        # not setStream(): it flushes the old stream, which may be closed (an earlier capture's)
        with contextlib.suppress(AttributeError):  # a read-only ``stream`` property
            old, handler.stream = handler.stream, file
            previous.append((handler, old))
    saved = [(fd, os.dup(fd)) for fd in (1, 2)]  # C code and child processes write there
    try:
        for fd, _ in saved:
            os.dup2(file.fileno(), fd)
        with contextlib.redirect_stdout(file), contextlib.redirect_stderr(file):
            yield path
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        file.flush()
        for handler, stream in reversed(previous):  # a handler of two loggers: its first stream
            handler.stream = stream


class TaskLogs:
    """The listener: capture a running attempt into its log file, copy it to ``run_log``."""

    def __init__(self, run_log: Path) -> None:
        self.run_log = run_log
        self.sigterm = signal.getsignal(signal.SIGTERM)
        self.capture = contextlib.ExitStack()  # the running attempt's, if any

    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance) -> None:
        self.capture.close()
        ti = task_instance
        path = attempt_log(ti.dag_id, ti.run_id, ti.task_id, ti.try_number)
        self.capture.callback(self._copy, path, path.stat().st_size if path.exists() else 0)
        self.capture.enter_context(captured_output(path))  # ends first, then _copy runs

    def _copy(self, path: Path, start: int) -> None:
        signal.signal(signal.SIGTERM, self.sigterm)  # the task runner installs its own
        with path.open(encoding="utf-8", errors="replace") as written:
            written.seek(start)
            log_file(self.run_log).write(written.read())

    @hookimpl
    def on_task_instance_success(self) -> None:  # pluggy passes only the arguments named
        self.capture.close()

    on_task_instance_failed = on_task_instance_skipped = on_task_instance_success


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
        listener.capture.close()
        manager.pm.unregister(listener)
