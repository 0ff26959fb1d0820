"""What a task's log says: one summary line at its end, no line per HTTP request."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any


class _DebugOnly(logging.Filter):
    """Demote a logger's records to DEBUG: shown only when debug logging is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


HTTP_LOGGERS = ("httpx", "httpx2", "anthropic", "anthropic._base_client")
"""The loggers that write one line per HTTP request: DEBUG only (see :class:`_DebugOnly`)."""


@contextlib.contextmanager
def quiet_http() -> Iterator[None]:
    """While the block runs, the SDK's per-request HTTP lines go to DEBUG (a task log reads
    as a story); the loggers are as they were afterwards."""
    demote = _DebugOnly()
    loggers = [logging.getLogger(name) for name in HTTP_LOGGERS]
    for logger in loggers:
        logger.addFilter(demote)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(demote)


@contextlib.contextmanager
def task_summary(task_id: str, ds: str) -> Iterator[dict]:
    """End the task's log with one line: what the ``with`` block put in the dict, and time."""
    started, line = time.monotonic(), {}
    ok = False
    try:
        yield line
        ok = True
    finally:
        parts = [f"{k.replace('_', ' ')} {_shown(v)}" for k, v in line.items() if v is not None]
        parts.append(f"{time.monotonic() - started:.1f} s")
        print(f"summary: {task_id} {ds} {'done' if ok else 'FAILED'}: {', '.join(parts)}",
              flush=True)  # fmt: skip


def _shown(value: Any) -> str:
    """A value as the summary line shows it (money with 4 decimals)."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)
