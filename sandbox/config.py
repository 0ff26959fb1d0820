"""Paths and settings, read from the environment each time they are asked for."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the package is installed in editable mode from it

DBT_PROJECT_DIR = ROOT / "dbt_project"
DEFAULT_RAW_DIR = ROOT / "data" / "seed"
LLM_CHOICES = ("mock", "anthropic")
MODES = ("realtime", "batch")

SHIPPED_AS_OF_DATE = date(2026, 11, 1)  # the as-of date of the raw data in data/seed

# Work kept across processes (a migrated Airflow DB, dbt's parse), in the virtual environment
# (make clean removes it): only ever a copy of what would be made again.
CACHE_ROOT = Path(sys.prefix) / "var" / "three-plane-sandbox"


def cache_dir(name: str) -> Path | None:
    """``CACHE_ROOT/name``, created; ``None`` when it cannot be written (nothing is cached)."""
    folder = CACHE_ROOT / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def part_file(target: Path) -> Path:
    """``.<name>.<pid>.part`` beside ``target``: written first, then renamed into place."""
    return target.with_name(f".{target.name}.{os.getpid()}.part")


def copy_into_place(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically (through :func:`part_file`, then a rename)."""
    part = part_file(target)
    try:
        shutil.copyfile(source, part)
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def sweep_parts(folder: Path) -> None:
    """Remove the ``.*.part`` files (an hour old) a process killed while writing left in ``folder``."""
    for part in folder.glob(".*.part"):
        with contextlib.suppress(OSError):
            if time.time() - part.stat().st_mtime > 3600:
                part.unlink()


class SandboxError(Exception):
    """An expected failure: its message names the cause and the fix; no traceback is shown."""


def _path(variable: str, default: str) -> Path:
    """The folder or file named by ``variable``, else ``default`` (relative to the repository)."""
    return Path(os.environ.get(variable) or ROOT / default).expanduser().resolve()


def warehouse_path() -> Path:
    """The DuckDB file (``SANDBOX_WAREHOUSE``, default ``warehouse/sandbox.duckdb``)."""
    return _path("SANDBOX_WAREHOUSE", "warehouse/sandbox.duckdb")


def raw_dir() -> Path:
    """The folder holding the raw ``users`` and ``events`` files (``SANDBOX_RAW_DIR``)."""
    return _path("SANDBOX_RAW_DIR", "data/seed")


def airflow_home() -> Path:
    """The Airflow home folder (``SANDBOX_AIRFLOW_HOME``, default ``<repo>/.airflow``)."""
    return _path("SANDBOX_AIRFLOW_HOME", ".airflow")


def dbt_project_dir() -> Path:
    """The dbt project (``SANDBOX_DBT_PROJECT_DIR``, default ``dbt_project/``)."""
    return _path("SANDBOX_DBT_PROJECT_DIR", "dbt_project")


def eval_cache_dir() -> Path:
    """Where built golden rows are kept (``SANDBOX_EVAL_CACHE``, default ``warehouse/eval-cache``)."""
    return _path("SANDBOX_EVAL_CACHE", "warehouse/eval-cache")


def eval_baselines_dir() -> Path:
    """The reviewed baselines (``SANDBOX_EVAL_BASELINES``, default ``data/golden/baselines``)."""
    return _path("SANDBOX_EVAL_BASELINES", "data/golden/baselines")


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class InvalidDate(SandboxError, ValueError):
    """A date that is not a strict ``YYYY-MM-DD`` calendar date."""


def parse_date(value: str | date) -> date:
    """Parse a strict ``YYYY-MM-DD`` date (or pass a ``date``, not a ``datetime``, through)."""
    example = f"write it as YYYY-MM-DD, e.g. {SHIPPED_AS_OF_DATE}"
    if isinstance(value, datetime):
        raise InvalidDate(
            f"{value.isoformat()!r} is a date and time, not a date: pass a date ({example})"
        )
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise InvalidDate(f"{value!r} is not a date ({exc}): {example}") from None
    raise InvalidDate(f"{value!r} is not a date: {example}")


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


def llm_choice(llm: str | None = None) -> str:
    """``llm``, else ``SANDBOX_LLM``, else ``mock``; a clear error for anything else."""
    name = (llm or os.environ.get("SANDBOX_LLM") or "mock").strip().lower()
    if name not in LLM_CHOICES:
        raise SandboxError(
            f"unknown LLM {name!r}: use --llm mock (offline fake) or --llm anthropic "
            "(needs ANTHROPIC_API_KEY), or set SANDBOX_LLM to one of them"
        )
    return name


def max_cost_usd(given: float | str | None = None) -> float | None:
    """A run's ceiling in US dollars: ``given``, else ``SANDBOX_MAX_COST_USD`` (default none)."""
    raw = given if given not in (None, "") else os.environ.get("SANDBOX_MAX_COST_USD")
    if raw in (None, ""):
        return None
    try:
        ceiling = float(raw)
    except (TypeError, ValueError):
        raise SandboxError(
            f"max_cost_usd must be a number of US dollars, got {raw!r}: fix the DAG param "
            "or SANDBOX_MAX_COST_USD"
        ) from None
    if not ceiling >= 0:
        raise SandboxError(f"max_cost_usd must be 0 or more, got {ceiling:g}")
    return ceiling


def infer_mode(given: str | None = None) -> str:
    """``realtime`` or ``batch``: ``given``, else ``SANDBOX_INFER_MODE`` (default realtime)."""
    mode = given or os.environ.get("SANDBOX_INFER_MODE") or "realtime"
    if mode not in MODES:
        raise SandboxError(
            f"mode must be realtime or batch, got {mode!r}: fix the DAG param or SANDBOX_INFER_MODE"
        )
    return mode


def seconds_setting(name: str, default: float) -> float:
    """The environment variable ``name`` as 0 or more seconds (``default`` when unset)."""
    raw = os.environ.get(name) or ""
    try:
        value = float(raw) if raw.strip() else default
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise SandboxError(
            f"{name}={raw!r} is not a number of seconds: set it to 0 or "
            f"more (default {default:g}), or unset it"
        )
    return value
