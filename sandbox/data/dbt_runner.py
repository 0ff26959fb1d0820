"""Run dbt in this process: its command line, one invocation, and its parse of the project.

A build hands dbt a parse made with a fixed date (``dbtRunner(manifest=...)``), so dbt's
saved parse (``partial_parse.msgpack``, in the sandbox's cache) serves every date.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

from sandbox.config import (
    cache_dir,
    copy_into_place,
    dbt_project_dir,
    environment,
    raw_dir,
    sweep_parts,
    warehouse_path,
)
from sandbox.data.raw import raw_format

PARSE_AS_OF = date(2000, 1, 1)
"""The as-of date dbt parses with: models read the date only when they run, so one fixed
value keeps the parse (and dbt's check of its saved parse) the same for every date."""
WAREHOUSE_PLACEHOLDER = "/sandbox-warehouse-placeholder"
"""The folder the profile names while dbt parses (dbt hashes the profile's connection values
into its saved parse; a parse opens no connection). The file name stays: it is the catalog."""
PARSES_KEPT = 16


def target_dir() -> Path:
    """dbt's target folder (compiled SQL, docs) beside the warehouse: one per warehouse."""
    return warehouse_path().parent / "dbt_target"


def dbt_args(
    command: str, as_of: date, target: str = "duckdb", *, target_path: Path | None = None
) -> list[str]:
    """The dbt command line ``sandbox`` runs for ``command`` (e.g. ``"build"``, ``"docs generate"``).

    The raw folder is not on it: dbt reads ``SANDBOX_RAW_DIR`` (see :func:`invoke`).
    """
    variables = {"as_of_date": as_of.isoformat(), "raw_format": raw_format(raw_dir())}
    project = dbt_project_dir()
    return [
        *command.split(),
        "--project-dir", str(project),
        "--profiles-dir", str(project),
        "--target", target,
        "--vars", json.dumps(variables),
        "--target-path", str(target_path or target_dir()),
        "--log-path", str(target_dir() / "logs"),
        "--log-level", "none",
    ]  # fmt: skip


def invoke(args: list[str], callbacks: list | None = None, manifest=None, *, parse_only=False):
    """Run one dbt command in this process (with ``manifest``: skip dbt's parse).

    profiles.yml and the sources read the warehouse and the raw folder from the environment:
    both are exported as absolute paths for the call (a parse gets the placeholder warehouse).
    """
    from dbt.cli.main import dbtRunner

    path = warehouse_path()
    if parse_only:
        path = Path(WAREHOUSE_PLACEHOLDER) / path.name
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    paths = {"SANDBOX_WAREHOUSE": str(path), "SANDBOX_RAW_DIR": raw_dir().as_posix()}
    try:
        with environment(paths):
            return dbtRunner(callbacks=callbacks or [], manifest=manifest).invoke(args)
    finally:
        _release_duckdb()


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open after a run, so its write lock lasts one
    step (a notebook that built once would otherwise lock the CLI out)."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager as manager
    except ImportError:  # another adapter (spark) without dbt-duckdb
        return
    with manager._LOCK:
        if manager._ENV is not None:
            try:
                manager._ENV.close()
            finally:
                manager._ENV = None


def parsed_manifest(target: str = "duckdb"):
    """dbt's parse of the project, or ``None`` when it does not parse (the build says why).

    dbt starts from the parse it saved last time (kept in the sandbox's cache, copied into a
    private folder so two processes never share a file), checks it, and parses only what changed.
    """
    saved = _saved_parse(target)
    with tempfile.TemporaryDirectory(prefix="dbt-parse-") as scratch:
        mine = Path(scratch) / "partial_parse.msgpack"
        if saved is not None:
            with contextlib.suppress(OSError):
                shutil.copyfile(saved, mine)
        seen: set[str] = set()
        args = dbt_args("parse", PARSE_AS_OF, target, target_path=Path(scratch))
        outcome = invoke(
            [*args, "--no-write-json"],  # a manifest.json nobody reads
            callbacks=[lambda event: seen.add(event.info.name)],
            parse_only=True,
        )
        if not outcome.success or outcome.result is None:
            return None
        if saved is not None:
            _keep_parse(mine, saved, changed="PartialParsingSkipParsing" not in seen)
    return outcome.result


def _saved_parse(target: str) -> Path | None:
    """Where dbt's saved parse is cached (``None``: no writable cache), one per state of what
    dbt hashes into it besides the files: project, target, raw format, catalog, dbt version."""
    from dbt.version import __version__ as dbt_version

    folder = cache_dir("dbt-parse")
    what = [dbt_project_dir(), target, raw_format(raw_dir()), warehouse_path().stem, dbt_version]
    digest = hashlib.sha256(json.dumps(what, default=str).encode()).hexdigest()[:16]
    return folder / f"{digest}.msgpack" if folder else None


def _keep_parse(mine: Path, saved: Path, *, changed: bool) -> None:
    """Save the parse dbt just wrote (atomically), or mark the saved one as used; keep the
    :data:`PARSES_KEPT` most recently used (each copy of the project has its own)."""
    try:
        if changed and mine.exists():
            copy_into_place(mine, saved)
        elif saved.exists():
            os.utime(saved)
        kept = sorted(saved.parent.glob("*.msgpack"), key=lambda p: p.stat().st_mtime)
        for old in kept[:-PARSES_KEPT]:
            old.unlink(missing_ok=True)
        sweep_parts(saved.parent)
    except OSError:  # a cache is optional: the next parse is a full one
        pass
