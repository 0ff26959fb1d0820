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


def quiet_http() -> None:
    """Send the per-request HTTP lines of the SDK to DEBUG, so a task log reads as a story."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DebugOnly) for f in logger.filters):
            logger.addFilter(_DebugOnly())


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
