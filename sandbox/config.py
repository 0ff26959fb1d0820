"""Paths and settings, read from the environment each time they are asked for."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (the package is installed in editable mode from it)."""

DBT_PROJECT_DIR = ROOT / "dbt_project"
DEFAULT_RAW_DIR = ROOT / "data" / "seed"
DEFAULT_WAREHOUSE = ROOT / "warehouse" / "sandbox.duckdb"

SHIPPED_AS_OF_DATE = date(2026, 11, 1)
"""The as-of date of the raw data the course ships in ``data/seed``."""


class SandboxError(Exception):
    """An expected failure: its message names the cause and the fix; no traceback is shown."""


def warehouse_path() -> Path:
    """The DuckDB file (``SANDBOX_WAREHOUSE``, default ``warehouse/sandbox.duckdb``)."""
    return Path(os.environ.get("SANDBOX_WAREHOUSE") or DEFAULT_WAREHOUSE).expanduser().resolve()


def raw_dir() -> Path:
    """The folder holding the raw ``users`` and ``events`` files (``SANDBOX_RAW_DIR``)."""
    return Path(os.environ.get("SANDBOX_RAW_DIR") or DEFAULT_RAW_DIR).expanduser().resolve()


def parse_date(value: str | date) -> date:
    """Parse ``YYYY-MM-DD`` (or pass a date through) with an error that says what was wrong."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise SandboxError(
            f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. {SHIPPED_AS_OF_DATE}"
        ) from None


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the ``with`` block, then put back what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
