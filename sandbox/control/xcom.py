"""XCom, the small values tasks leave for each other, ``sandbox run`` and the UI."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import date, datetime
from typing import Any


def push(key: str, value: Any, ti=None) -> None:
    """Leave ``value`` in the running task's XCom (kept when the task then fails)."""
    try:
        if ti is None:
            from airflow.sdk import get_current_context

            ti = get_current_context()["ti"]
        ti.xcom_push(key=key, value=value)
    except Exception:  # called outside a task (a test, a notebook): nothing to push to
        pass


def jsonable(value: Any) -> Any:
    """A JSON-friendly copy of a plane's result (dataclass, dict, date...) for XCom."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def current_context() -> dict | None:
    """The running task's context, or None outside a task (a test, a notebook)."""
    with contextlib.suppress(Exception):
        from airflow.sdk import get_current_context

        return get_current_context()
    return None


def pull(ti, task_id: str, key: str | None = None) -> Any:
    """A task's XCom (its return value when ``key`` is None); None where XCom is unreachable."""
    try:
        if key is None:
            return ti.xcom_pull(task_ids=task_id)
        return ti.xcom_pull(task_ids=task_id, key=key)
    except Exception:  # outside a task runner (e.g. a DAG-level callback) XCom is unreachable
        return None
