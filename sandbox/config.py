"""Paths and settings, read from the environment each time they are asked for."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (the package is installed in editable mode from it)."""

DBT_PROJECT_DIR = ROOT / "dbt_project"
DEFAULT_RAW_DIR = ROOT / "data" / "seed"
DEFAULT_WAREHOUSE = ROOT / "warehouse" / "sandbox.duckdb"

SHIPPED_AS_OF_DATE = date(2026, 11, 1)
"""The as-of date of the raw data the course ships in ``data/seed``."""


CACHE_ROOT = Path(sys.prefix) / "var" / "three-plane-sandbox"
"""Work the sandbox keeps to avoid repeating it in every new process (a migrated Airflow DB,
dbt's parse of the project), beside the installed packages it depends on: the virtual
environment (``make clean`` removes it). Only ever a copy of what would be made again."""


def cache_dir(name: str) -> Path | None:
    """``CACHE_ROOT/name``, created; ``None`` when it cannot be written (nothing is cached)."""
    folder = CACHE_ROOT / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def part_file(target: Path) -> Path:
    """Where a writer of ``target`` writes first (``.<name>.<pid>.part``, beside it), so that
    a rename puts a whole file in place and readers never see half of one."""
    return target.with_name(f".{target.name}.{os.getpid()}.part")


def copy_into_place(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically: through :func:`part_file`, then a rename.
    On an error the part file is removed and the error raised; ``target`` is unchanged."""
    import shutil

    part = part_file(target)
    try:
        shutil.copyfile(source, part)
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def sweep_parts(folder: Path, older_than_s: float = 3600) -> None:
    """Remove the ``.*.part`` files of ``folder`` (a cache) that a process killed while
    writing one left behind (a cache entry is written to a part file, then renamed)."""
    import time

    for part in folder.glob(".*.part"):
        with contextlib.suppress(OSError):
            if time.time() - part.stat().st_mtime > older_than_s:
                part.unlink()


class SandboxError(Exception):
    """An expected failure: its message names the cause and the fix; no traceback is shown."""


def warehouse_path() -> Path:
    """The DuckDB file (``SANDBOX_WAREHOUSE``, default ``warehouse/sandbox.duckdb``)."""
    return Path(os.environ.get("SANDBOX_WAREHOUSE") or DEFAULT_WAREHOUSE).expanduser().resolve()


def raw_dir() -> Path:
    """The folder holding the raw ``users`` and ``events`` files (``SANDBOX_RAW_DIR``)."""
    return Path(os.environ.get("SANDBOX_RAW_DIR") or DEFAULT_RAW_DIR).expanduser().resolve()


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class InvalidDate(SandboxError, ValueError):
    """A date that is not a strict ``YYYY-MM-DD`` calendar date."""


def parse_date(value: str | date) -> date:
    """Parse a strict ``YYYY-MM-DD`` date (or pass a ``date`` through).

    Anything else (trailing characters, a wrong length, an impossible day, a ``datetime``, whose
    time and zone would be dropped) raises :class:`InvalidDate` saying what was wrong.
    """
    example = f"write it as YYYY-MM-DD, e.g. {SHIPPED_AS_OF_DATE}"
    if isinstance(value, datetime):
        raise InvalidDate(
            f"{value.isoformat()!r} is a date and time, not a date: pass a date ({example})"
        )
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise InvalidDate(f"{value!r} ({type(value).__name__}) is not a date: {example}")
    if not _ISO_DATE.fullmatch(value):
        raise InvalidDate(f"{value!r} is not a date: {example}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidDate(f"{value!r} is not a date ({exc}): {example}") from None


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


DEFAULT_BATCH_CREATE_GRACE_S = 120.0


def batch_create_grace_s() -> float:
    """How long the batch list must show nothing before a create with no answer counts as
    never made (``SANDBOX_BATCH_CREATE_GRACE_S``, seconds, default 120)."""
    raw = os.environ.get("SANDBOX_BATCH_CREATE_GRACE_S") or ""
    try:
        value = float(raw) if raw.strip() else DEFAULT_BATCH_CREATE_GRACE_S
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise SandboxError(
            f"SANDBOX_BATCH_CREATE_GRACE_S={raw!r} is not a number of seconds: set it to 0 or "
            f"more (default {DEFAULT_BATCH_CREATE_GRACE_S:g}), or unset it"
        )
    return value
