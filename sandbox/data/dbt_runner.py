"""Run dbt in this process: its command line, one invocation, and its parse of the project.

A process keeps its parses (``dbtRunner(manifest=...)``), and the cache keeps dbt's saved
parse (``partial_parse.msgpack``) for the next process.
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

# models read the as-of date only when they run: one fixed date keeps the parse the same
PARSE_AS_OF = date(2000, 1, 1)
# the folder the profile names while dbt parses (dbt hashes the profile's connection values into
# its saved parse; a parse opens no connection); the file name stays: it is the catalog
WAREHOUSE_PLACEHOLDER = "/sandbox-warehouse-placeholder"
MANIFESTS_KEPT = 4
PARSES_KEPT = 16


def target_dir() -> Path:
    """dbt's target folder (compiled SQL, docs) beside the warehouse file: one per warehouse."""
    return warehouse_path().parent / "dbt_target"


def dbt_args(
    command: str, as_of: date, target: str = "duckdb", *, target_path: Path | None = None
) -> list[str]:
    """The dbt command line for ``command`` (the raw folder is not on it: see :func:`invoke`)."""
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
    """Run one dbt command in this process (with ``manifest``: skip dbt's parse); profiles.yml
    and the sources read the warehouse and raw folder from the environment, set for the call."""
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
    """Close the database dbt-duckdb caches per process: it would keep the file's write lock (a
    notebook that built once would lock the CLI out)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager as manager

    with manager._LOCK:
        env, manager._ENV = manager._ENV, None
        if env is not None:
            env.close()


_manifests: dict[tuple, object] = {}  # this process's parses, most recently used last


def parsed_manifest(target: str = "duckdb"):
    """dbt's parse of the project, once per process per state of its inputs (see
    :func:`_manifest_key`); ``None`` when the project does not parse (the build reports why)."""
    key = _manifest_key(target)
    manifest = _manifests.pop(key, None) or _parse(target)
    if manifest is not None:
        _manifests[key] = manifest
        while len(_manifests) > MANIFESTS_KEPT:
            _manifests.pop(next(iter(_manifests)))
    return manifest


def _parse(target: str):
    """Parse the project, starting from dbt's saved parse (dbt re-parses only what changed),
    copied into a private folder so two processes never share a file."""
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


def _parsed_from(target: str) -> list[str]:
    """What a parse depends on besides the project's files (the file's stem is dbt's catalog)."""
    from dbt.version import __version__ as dbt_version

    return [str(dbt_project_dir()), target, raw_format(raw_dir()), warehouse_path().stem, dbt_version]


def _saved_parse(target: str) -> Path | None:
    """Where dbt's saved parse of this project is cached (``None``: no writable cache)."""
    folder = cache_dir("dbt-parse")
    what = json.dumps(_parsed_from(target)).encode()
    return folder / f"{hashlib.sha256(what).hexdigest()[:16]}.msgpack" if folder else None


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


def _manifest_key(target: str) -> tuple:
    """What a parsed manifest depends on (see :func:`parsed_manifest`)."""
    files = []
    for folder, dirs, names in os.walk(dbt_project_dir()):
        dirs[:] = sorted(d for d in dirs if d not in ("target", "logs") and not d.startswith("."))
        for name in sorted(names):
            with contextlib.suppress(OSError):  # removed while we looked: the key differs anyway
                stat = os.stat(path := os.path.join(folder, name))
                files.append((path, stat.st_size, stat.st_mtime_ns))
    return (*_parsed_from(target), str(raw_dir()), tuple(files))
