"""Run ``dbt build`` in-process and turn its results into a typed outcome or a ``GateFailed``."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from sandbox.config import (
    DBT_PROJECT_DIR,
    SandboxError,
    cache_dir,
    copy_into_place,
    parse_date,
    raw_dir,
    sweep_parts,
    warehouse_path,
)
from sandbox.data.publish import (
    CANDIDATE_SCHEMA,
    describe_published,
    publish,
    publish_spark,
    published_dates,
    published_name,
)
from sandbox.data.raw import raw_format, unreadable_csv
from sandbox.warehouse import connect, ensure_writable, holds_step

LAYERS = ("staging", "intermediate", "marts")
RAW_TABLE_OF = {"staging.stg_users": "users", "staging.stg_user_events": "events"}
"""The raw table behind each staging model, to name the file in a failure."""
STAGING_OF = {table: model for model, table in RAW_TABLE_OF.items()}
RAW_COLUMN_OF = {
    ("staging.stg_users", "user_id"): "id",
    ("staging.stg_users", "plan_tier"): "plan_tier",
    ("staging.stg_users", "signed_up_at"): "signed_up_at",
    ("staging.stg_users", "country_code"): "country",
    ("staging.stg_user_events", "event_id"): "id",
    ("staging.stg_user_events", "user_id"): "user_id",
    ("staging.stg_user_events", "event_type"): "event_type",
    ("staging.stg_user_events", "event_at"): "created_at",
}
"""The raw column behind each staged column, to name it in a failure."""
RAW_TIMESTAMPS = {("staging.stg_users", "signed_up_at"), ("staging.stg_user_events", "event_at")}
"""Staged timestamps: a NULL there is a raw value staging could not read."""
TARGETS = ("duckdb", "spark")
SPARK_NEEDS = (
    "the spark target needs the [spark] extra and Java 17: pip install -e '.[spark]' and "
    "apt-get install openjdk-17-jre-headless"
)


class GateFailed(SandboxError):
    """The data plane's quality gate failed: a model, a contract or a check did not pass.

    ``failures`` lists what failed (model, column, test, failing rows, and for the freshness
    and completeness checks what was seen against which threshold); ``skipped`` the nodes
    dbt did not run because they lie downstream. Nothing was published: ``published`` says
    what the published marts hold (the last good date, unchanged by this build).
    """

    def __init__(
        self,
        as_of_date: date,
        failures: list[GateFailure],
        skipped: list[str],
        published: str = "the published marts keep their previous rows",
    ):
        self.as_of_date = as_of_date
        self.failures = failures
        self.skipped = skipped
        self.published = published
        lines = [
            f"the quality gate failed for {as_of_date}: {len(failures)} check"
            f"{'s' if len(failures) != 1 else ''} failed and {len(skipped)} downstream node"
            f"{'s were' if len(skipped) != 1 else ' was'} skipped; nothing was published "
            f"({published})."
        ]
        lines += [f"  - {f.describe()}" for f in failures]
        if all(f.kind == "unit test" for f in failures):
            lines.append(
                "Fix the model's SQL (or the unit test's expected rows, if the rule changed), "
                "then build again with --unit-tests."
            )
        elif any(f.test in ("fresh_as_of", "volume_as_of") for f in failures):
            lines.append(
                "The raw files are late or incomplete for this date: deliver the missing "
                "events to SANDBOX_RAW_DIR (or build a date the export covers), then build "
                "again. A deliberate gap is a decision: set the dbt vars "
                "freshness_max_lag_days / volume_min_ratio in dbt_project.yml."
            )
        else:
            lines.append(
                "Fix the raw data (SANDBOX_RAW_DIR) or the model named above, then build again."
            )
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class GateFailure:
    """One failing node of a build: a data test, a unit test or a model (incl. its contract)."""

    node: str
    kind: str  # "data test", "unit test", "model"
    model: str | None
    column: str | None
    test: str | None
    failing_rows: int | None
    message: str
    raw_file: str | None = None
    detail: str | None = None  # what the check saw, e.g. the latest event and the threshold
    raw_column: str | None = None  # the raw file's column behind ``column``

    def describe(self) -> str:
        """One readable line: what failed, where, how many rows (and the raw file behind it)."""
        where = ".".join(p for p in (self.model, self.column) if p)
        column = f", column {self.raw_column}" if self.raw_column else ""
        source = f" (raw file: {self.raw_file}{column})" if self.raw_file else ""
        detail = f": {self.detail}" if self.detail else ""
        if self.kind == "data test":
            rows = f"{self.failing_rows} failing row{'s' if self.failing_rows != 1 else ''}"
            return f"{self.test}{' on ' + where if where else ''}: {rows}{source}{detail}"
        if self.kind == "unit test":
            return f"unit test {self.test} on {where}: {self.message}"
        return f"model {where} did not build{source}: {self.message}"


@dataclass(frozen=True)
class NodeOutcome:
    """One node of a dbt build and how it ended."""

    name: str
    kind: str
    status: str
    seconds: float
    failing_rows: int | None = None


@dataclass
class BuildResult:
    """A successful build: what ran, how long it took and what the warehouse now holds."""

    as_of_date: date
    target: str
    warehouse: Path
    nodes: list[NodeOutcome]
    elapsed_s: float
    rows: dict[str, int] = field(default_factory=dict)
    publish_s: float = 0.0
    """Seconds spent publishing the audited candidates, after dbt (not in ``elapsed_s``)."""

    @property
    def models(self) -> int:
        return sum(n.kind == "model" for n in self.nodes)

    @property
    def data_tests(self) -> int:
        return sum(n.kind == "data test" for n in self.nodes)

    @property
    def unit_tests(self) -> int:
        return sum(n.kind == "unit test" for n in self.nodes)

    @property
    def sql_s(self) -> float:
        """Seconds spent running nodes (the rest of ``elapsed_s`` is dbt's fixed start-up)."""
        return sum(n.seconds for n in self.nodes)

    def checks(self) -> str:
        """What passed, e.g. ``"6 models and 29 data tests"`` (plus unit tests when they ran)."""
        if self.unit_tests:
            return f"{self.models} models, {self.data_tests} data tests and {self.unit_tests} unit tests"
        return f"{self.models} models and {self.data_tests} data tests"

    def render(self) -> str:
        """A short summary for the terminal."""
        lines = [
            f"dbt build for {self.as_of_date} on {self.target}: {self.checks()} passed "
            f"in {self.elapsed_s:.1f} s; marts published for {self.as_of_date} "
            f"in {self.publish_s:.2f} s",
        ]
        for relation, count in self.rows.items():
            lines.append(f"  {relation:<45} {count:>12,} rows")
        lines.append(f"warehouse: {self.warehouse}")
        return "\n".join(lines)


def project_dir() -> Path:
    """The dbt project (``SANDBOX_DBT_PROJECT_DIR``, default ``dbt_project/``)."""
    return Path(os.environ.get("SANDBOX_DBT_PROJECT_DIR") or DBT_PROJECT_DIR).resolve()


def target_dir() -> Path:
    """dbt's target folder for this warehouse (compiled SQL, manifest, docs).

    Kept next to the warehouse file, so two warehouses (a test's and yours) never share one.
    """
    return warehouse_path().parent / "dbt_target"


def spark_warehouse_dir() -> Path:
    """Where the spark target keeps its tables and metastore: ``spark-warehouse/`` beside the
    DuckDB file, so a test's or a scratch warehouse gets its own."""
    return warehouse_path().parent / "spark-warehouse"


def _java_major() -> int | None:
    """The major version of the ``java`` PySpark will start (``$JAVA_HOME/bin/java`` or PATH)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def _prepare_spark() -> None:
    """Check what the spark target needs and export the settings profiles.yml and Spark read."""
    missing = [
        name
        for name, module in (("dbt-spark", "dbt.adapters.spark"), ("pyspark", "pyspark"))
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise SandboxError(f"{SPARK_NEEDS} ({' and '.join(missing)} not installed)")
    java = _java_major()
    if java is None or java < 17:
        found = "no java found" if java is None else f"found Java {java}"
        raise SandboxError(f"{SPARK_NEEDS} ({found}; set JAVA_HOME or put java on PATH)")
    warnings.filterwarnings(  # printed at import; we hand Spark no pandas objects
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    from pyspark import SparkContext

    try:  # PySpark 4 also logs every failing statement as JSON; dbt reports it already
        from pyspark.logger import PySparkLogger

        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
            PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    except ImportError:  # PySpark 3.5 has no such logger
        pass
    wanted = spark_warehouse_dir()
    running = SparkContext._active_spark_context  # dbt-spark keeps its session per process
    if running is not None:
        current = running.getConf().get("spark.sql.warehouse.dir") or ""
        if Path(current.removeprefix("file:")).resolve() != wanted:
            raise SandboxError(
                f"this process already runs Spark on {current}, and Spark cannot switch to "
                f"{wanted} inside one process: build from a new process (restart the notebook "
                "kernel, or run `sandbox build --target spark`)."
            )
    wanted.mkdir(parents=True, exist_ok=True)
    os.environ["SANDBOX_SPARK_WAREHOUSE"] = str(wanted)
    os.environ.setdefault("SPARK_CONF_DIR", str(project_dir() / "spark"))  # log4j2: errors only
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # offline: no hostname lookups


def dbt_args(
    command: str,
    as_of_date: date,
    target: str = "duckdb",
    *,
    raw_dir_var: str | None = None,
    target_path: Path | None = None,
) -> list[str]:
    """The dbt command line ``sandbox`` runs for ``command`` (e.g. ``"build"``, ``"docs generate"``).

    ``raw_dir_var`` replaces the raw folder's path in ``--vars`` (the format still comes from
    the real folder): :func:`parsed_manifest` parses with a placeholder there, into its own
    ``target_path``.
    """
    folder = raw_dir()
    project = project_dir()
    variables = {
        "as_of_date": as_of_date.isoformat(),
        "raw_dir": raw_dir_var or folder.as_posix(),
        "raw_format": raw_format(folder),
    }
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
    """Run one dbt command in this process with the warehouse path exported for profiles.yml
    (with ``manifest``: a project dbt parsed earlier, see :func:`parsed_manifest`).

    ``parse_only``: a ``dbt parse``, which opens no connection, so the profile is given
    :data:`WAREHOUSE_PLACEHOLDER` (same file name, so the same catalog) instead of the path.
    """
    from dbt.cli.main import dbtRunner

    real = warehouse_path()
    if parse_only:
        path = Path(WAREHOUSE_PLACEHOLDER) / real.name
    else:
        path = real
        path.parent.mkdir(parents=True, exist_ok=True)
    os.environ["SANDBOX_WAREHOUSE"] = str(path)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    try:
        with _fewer_gc_pauses():
            return dbtRunner(callbacks=callbacks or [], manifest=manifest).invoke(args)
    finally:
        os.environ["SANDBOX_WAREHOUSE"] = str(real)
        _release_duckdb()


MANIFESTS_KEPT = 4
WAREHOUSE_PLACEHOLDER = "/sandbox-warehouse-placeholder"
"""The folder the profile names while dbt parses (dbt hashes the profile's connection values
into its saved parse, so the real path would make every warehouse parse the project anew)."""
RAW_DIR_PLACEHOLDER = "/sandbox-raw-dir-placeholder"
"""The raw folder dbt parses with; each build puts its own folder in its place (no quote or
brace in it, so the sources' templates hold it exactly as written)."""


@dataclass
class _Parsed:
    """A parsed manifest and, per raw source, its location templates (the placeholder in them)."""

    manifest: object
    templates: dict[str, tuple[str, str]]  # source id -> (meta external_location, relation_name)
    reused: bool = False  # dbt found nothing changed since the parse it saved: no file parsed


_manifests: dict[tuple, _Parsed] = {}


def parsed_manifest(target: str = "duckdb"):
    """dbt's parsed project, parsed once per process for each state of what it was parsed from.

    dbt parses the whole project (about a thousand macros, every model and YAML file) before
    each command, and re-parses all of it whenever ``--vars`` change, so every day of a
    backfill, and every build from another raw folder (each quality-gate drill), cost a full
    parse: about 1.2 s of CPU on top of the build's own 1.1 s. Yet of the three vars only two
    shape what dbt parses: ``raw_dir`` and ``raw_format`` (the raw sources'
    ``external_location`` in ``_sources.yml``). ``as_of_date`` is read when a node is
    compiled, at run time, from the current command's ``--vars`` (keep it so: never use it
    in a ``config()`` or a YAML property). So the project is parsed with
    :data:`RAW_DIR_PLACEHOLDER` as the raw folder (and :data:`PARSE_AS_OF_DATE` as the date,
    see :func:`_parse` for the parse dbt saves across processes), each build writes its own folder into the
    two raw sources (their ``meta.external_location``, which dbt-duckdb reads when a model
    selects from the source, and their ``relation_name``), and the manifest is reused, through
    ``dbtRunner(manifest=...)``, for as long as nothing else it was parsed from changed: the
    project's files (names, sizes, modification times: a model you add or edit is parsed),
    the target, the raw format, and the warehouse file's name (DuckDB's catalog, which dbt
    writes into every node). ``None`` when the project does not parse, or when its sources no
    longer take the raw folder from ``raw_dir``: the build then parses it itself, as it
    always did.
    """
    key = _manifest_key(target)
    parsed = _manifests.pop(key, None) or _parse(target)
    if parsed is None:
        return None
    _manifests[key] = parsed  # most recently used last
    while len(_manifests) > MANIFESTS_KEPT:
        _manifests.pop(next(iter(_manifests)))
    _point_raw_sources(parsed, raw_dir())
    return parsed.manifest


PARSE_AS_OF_DATE = date(2000, 1, 1)
"""The ``as_of_date`` dbt parses with: read at run time only (see :func:`parsed_manifest`), so
one fixed value keeps the parse's ``--vars``, and so dbt's saved parse, the same for every date."""
PARSES_KEPT = 16


def _parse(target: str) -> _Parsed | None:
    """Parse the project with dbt, starting from the parse dbt saved last time, if any.

    A new process (each ``sandbox`` command, notebook kernel, Airflow task) would parse the
    whole project again: about 2.5 s of CPU. dbt can start from the parse it saved
    (``partial_parse.msgpack``) and re-parse only the files whose contents changed, when the
    parse's ``--vars``, target, profile (connection settings) and ``dbt_project.yml`` are the
    same: it checks all of that itself. With the raw folder, the date and the warehouse's
    folder fixed to placeholders, they are the same for every build of a project, so the saved
    parse is kept in the sandbox's cache
    (:func:`sandbox.config.cache_dir`), one per project folder, target, raw format and
    warehouse name (DuckDB's catalog, which dbt writes into every node but does not check),
    and copied into a private folder for each parse (two processes never share a file dbt
    writes). Not cacheable (no writable cache): dbt parses everything, as it always did.
    """
    saved = _saved_parse(target)
    with tempfile.TemporaryDirectory(prefix="dbt-parse-") as scratch:
        mine = Path(scratch) / "partial_parse.msgpack"
        if saved is not None:
            with contextlib.suppress(OSError):
                shutil.copyfile(saved, mine)
        seen: set[str] = set()
        outcome = invoke(
            [*dbt_args("parse", PARSE_AS_OF_DATE, target, raw_dir_var=RAW_DIR_PLACEHOLDER,
                       target_path=Path(scratch)), "--no-write-json"],  # a manifest.json nobody reads
            callbacks=[lambda event: seen.add(event.info.name)],
            parse_only=True,
        )  # fmt: skip
        if not outcome.success or outcome.result is None:
            return None
        parsed = _Parsed(
            outcome.result,
            _raw_templates(outcome.result),
            reused="PartialParsingSkipParsing" in seen,
        )
        if not parsed.templates:
            return None
        if saved is not None:
            _keep_parse(mine, saved, changed=not parsed.reused)
    return parsed


def _saved_parse(target: str) -> Path | None:
    """Where dbt's saved parse of this project is cached (``None``: no writable cache)."""
    from dbt.version import __version__ as dbt_version

    folder = cache_dir("dbt-parse")
    if folder is None:
        return None
    what = [str(project_dir().resolve()), target, raw_format(raw_dir()),
            warehouse_path().stem, dbt_version]  # fmt: skip
    return folder / f"{hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]}.msgpack"


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


def _raw_templates(manifest) -> dict[str, tuple[str, str]]:
    templates = {}
    for source in manifest.sources.values():
        location = (source.meta or {}).get("external_location")
        if isinstance(location, str) and RAW_DIR_PLACEHOLDER in location:
            templates[source.unique_id] = (location, source.relation_name or "")
    return templates


def _point_raw_sources(parsed: _Parsed, folder: Path) -> None:
    """Write ``folder`` into the raw sources, escaped as ``_sources.yml`` escapes it: quotes
    doubled for the SQL literal, and braces doubled in the template that dbt-duckdb fills
    in with ``str.format`` (the relation name is that template filled in)."""
    literal = folder.as_posix().replace("'", "''")
    formatted = literal.replace("{", "{{").replace("}", "}}")
    for unique_id, (location, relation) in parsed.templates.items():
        source = parsed.manifest.sources[unique_id]
        source.meta["external_location"] = location.replace(RAW_DIR_PLACEHOLDER, formatted)
        source.relation_name = relation.replace(RAW_DIR_PLACEHOLDER, literal)


def _manifest_key(target: str) -> tuple:
    """What a parsed manifest depends on (see :func:`parsed_manifest`)."""
    from dbt.version import __version__ as dbt_version

    project = project_dir().resolve()
    files = []
    for folder, dirs, names in os.walk(project):
        dirs[:] = sorted(d for d in dirs if d not in ("target", "logs") and not d.startswith("."))
        for name in sorted(names):
            try:
                stat = os.stat(os.path.join(folder, name))
            except OSError:  # removed while we looked: the key differs either way
                continue
            files.append((os.path.join(folder, name), stat.st_size, stat.st_mtime_ns))
    return (str(project), target, raw_format(raw_dir()), warehouse_path().stem,
            dbt_version, tuple(files))  # fmt: skip


GC_THRESHOLD = (200_000, 30, 30)
"""CPython's cyclic-GC thresholds while dbt runs (the default is ``(700, 10, 10)``)."""


@contextlib.contextmanager
def _fewer_gc_pauses() -> Iterator[None]:
    """Run the block with the cyclic garbage collector triggered less often.

    dbt builds a large object graph that lives for the whole run (the manifest, the compiled
    templates of about a thousand macros) and then allocates many short-lived objects per
    node. With CPython's default thresholds the collector keeps walking that graph: full
    collections of up to ~125 ms that hold every thread. A higher first threshold, as mypy
    uses for the same kind of workload, took dbt's start-up from 2.7 to 2.5 s and its SQL
    phase from 1.89 to 1.79 s at 100,000 users (medians of 5), for ~30 MB more peak memory.
    """
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open after a run.

    dbt-duckdb caches one database instance per process (until exit), which would keep the
    file's write lock: a notebook kernel that built once would lock the CLI out. We close it
    after every invocation so the lock lasts exactly one step.
    """
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


def _kind(node) -> str:
    resource = str(getattr(node.resource_type, "value", node.resource_type))
    return {"model": "model", "test": "data test", "unit_test": "unit test"}.get(resource, resource)


def _relation(node) -> str:
    """The node's relation under its *published* name (a candidate mart reads ``marts.x``)."""
    return published_name(f"{node.schema}.{node.name}") if getattr(node, "schema", None) else node.name


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
MESSAGE_CHARS = 400


def _clean(message: str) -> str:
    """One line, no terminal colours, at most MESSAGE_CHARS characters."""
    text = " ".join(_ANSI.sub("", message).split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _unit_test_diff(message: str) -> str | None:
    """dbt's unit-test diff table as one readable line, or None when it is not one.

    dbt prints the rows as a daff table: a ``@@`` header, then one marker per row (``→`` a row
    whose cells read ``expected→actual``, ``+++`` a row nobody expected, ``---`` an expected row
    that is missing). E.g. ``user_id u1: event_count_7d expected 2, got 3``. dbt builds the
    actual and expected rows internally, but its run result carries only this rendered table.
    """
    lines = [line for line in _ANSI.sub("", message).replace("\r", "").splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if line.lstrip().startswith("@@")), None)
    if header is None:
        return None
    columns = [c.strip() for c in lines[header].split(",")[1:]]
    found = []
    for line in lines[header + 1 :]:
        marker, *cells = [c.strip() for c in line.split(",")]
        pairs = list(zip(columns, cells, strict=False))
        if marker == "+++":
            found.append("unexpected row " + ", ".join(f"{c}={v}" for c, v in pairs))
        elif marker == "---":
            found.append("missing row " + ", ".join(f"{c}={v}" for c, v in pairs))
        elif "→" in marker and cells:
            changed = [
                f"{column} expected {value.split('→')[0]}, got {value.split('→')[1]}"
                for column, value in pairs
                if "→" in value
            ]
            found.append(f"{columns[0]} {cells[0]}: " + "; ".join(changed))
    return _clean("actual rows differ from the expected ones: " + " | ".join(found)) if found else None


def _failure(result, relations: dict[str, str]) -> GateFailure:
    node = result.node
    kind = _kind(node)
    message = _clean(str(result.message or result.status))
    if kind == "data test":
        meta = getattr(node, "test_metadata", None)
        test = meta.name if meta else node.name
        attached = getattr(node, "attached_node", None)
        model = relations.get(attached or "", attached)
        column = getattr(node, "column_name", None)
        return GateFailure(node.unique_id, kind, model, column, test, result.failures, message)
    if kind == "unit test":
        tested = getattr(node, "tested_node_unique_id", None) or ""
        model = relations.get(tested, tested.rsplit(".", 1)[-1] or None)
        name = node.name.split(".")[-1]
        message = _unit_test_diff(str(result.message or "")) or message
        return GateFailure(node.unique_id, kind, model, None, name, None, message)
    if "constraint" in message.lower() and "check" in message.lower():
        message = f"contract constraint failed before the swap ({message})"
    return GateFailure(node.unique_id, kind, _relation(node), None, None, None, message)


def _row_counts(relations: list[str]) -> dict[str, int]:
    with connect(read_only=True) as con:
        return {r: con.execute(f"select count(*) from {r}").fetchone()[0] for r in relations}


def _spark_row_counts(relations: list[str]) -> dict[str, int]:
    """Counts from the Spark session dbt-spark left running in this process (≈1 s)."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is None:
        return {}
    spark = SparkSession.builder.getOrCreate()  # the session dbt used, not a new one
    return {r: spark.table(r).count() for r in relations}


@holds_step("sandbox build")
def build(
    as_of_date: date | str,
    *,
    target: str = "duckdb",
    unit_tests: bool = False,
    progress: bool = False,
) -> BuildResult:
    """Build and test the data plane for ``as_of_date`` with ``dbt build``.

    This is the daily build: models, their contracts and the data tests, i.e. checks of the
    *data*. The dbt unit tests check the *code* (each model's SQL on fixed, hand-written rows),
    so they give the same verdict every day until the SQL changes; they run where code
    changes: in ``make test`` (CI) and here with ``unit_tests=True`` (``sandbox build
    --unit-tests``), each one right before the model it covers, which then is not built if it
    fails.

    Write-audit-publish: dbt writes the marts as candidates (``marts_candidate.*``) and runs
    every check on them: contracts, the data tests of every layer, and the freshness and
    completeness checks relative to ``as_of_date``. Only when all of them passed are both
    marts published together (:func:`sandbox.data.publish.publish`, one DuckDB transaction),
    with the date's rows kept in ``marts.<mart>_history``.

    Raises :class:`GateFailed` when any model, contract, check or (requested) unit test
    fails: nothing is published, and the message says what the published marts still hold.
    (On ``target="spark"`` the data tests are the whole gate, as Spark enforces no
    constraints, and the marts are published one after the other: Spark has no transaction
    across tables.)
    """
    as_of_date = parse_date(as_of_date)
    if target not in TARGETS:
        raise SandboxError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    if target == "spark":
        _prepare_spark()
    args = dbt_args("build", as_of_date, target)
    if not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    bar = None
    callbacks = []
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"dbt build {as_of_date}", unit="node", leave=False)

        def _advance(event) -> None:
            if event.info.name == "LogStartLine" and bar.total is None:
                bar.reset(total=event.data.total)
            elif event.info.name == "NodeFinished":
                bar.update(1)

        callbacks.append(_advance)
    if target == "duckdb":
        ensure_writable()  # a clear "in use by PID" now rather than dbt's raw lock error
    _check_raw_files(as_of_date, target)
    started = time.perf_counter()
    try:
        manifest = parsed_manifest(target) if target == "duckdb" else None
        outcome = invoke(args, callbacks, manifest)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started
    if outcome.result is None or not hasattr(outcome.result, "results"):
        reason = " ".join(str(outcome.exception or "dbt stopped before running any node").split())
        raise SandboxError(f"dbt could not start the build for {as_of_date}: {reason}")

    results = outcome.result.results
    relations = {r.node.unique_id: _relation(r.node) for r in results if _kind(r.node) == "model"}
    failed = [r for r in results if str(r.status) in ("error", "fail", "runtime error")]
    if failed:
        skipped = [r.node.name for r in results if str(r.status) == "skipped"]
        folder = raw_dir()
        fmt = raw_format(folder)
        failures = []
        for r in failed:
            failure = _failure(r, relations)
            if failure.model in RAW_TABLE_OF:
                failure = replace(
                    failure,
                    raw_file=str(folder / f"{RAW_TABLE_OF[failure.model]}.{fmt}"),
                    raw_column=RAW_COLUMN_OF.get((failure.model, failure.column)),
                )
            if target == "duckdb":
                failure = replace(failure, detail=_detail(r.node, failure, fmt))
            failures.append(failure)
        raise GateFailed(as_of_date, failures, skipped, _published_now(target))

    nodes = [
        NodeOutcome(r.node.name, _kind(r.node), str(r.status), r.execution_time, r.failures)
        for r in results
    ]
    candidates = sorted(
        f"{r.node.schema}.{r.node.name}"
        for r in results
        if _kind(r.node) == "model" and r.node.schema == CANDIDATE_SCHEMA
    )
    where = warehouse_path() if target == "duckdb" else spark_warehouse_dir()
    started_publish = time.perf_counter()
    if target == "duckdb":
        published_rows = publish(as_of_date, candidates)
    else:
        published_rows = publish_spark(as_of_date, candidates)
    published = time.perf_counter() - started_publish
    result = BuildResult(as_of_date, target, where, nodes, elapsed, publish_s=published)
    ordered = sorted(relations.values(), key=lambda r: (LAYERS.index(r.split(".")[0]), r))
    work = [r for r in ordered if r not in published_rows]
    counts = _row_counts(work) if target == "duckdb" else _spark_row_counts(work)
    result.rows = {r: published_rows.get(r, counts.get(r, 0)) for r in ordered}
    return result


def _check_raw_files(as_of_date: date, target: str) -> None:
    """Fail the gate before dbt runs when a raw CSV file cannot be read (see sandbox.data.raw)."""
    folder = raw_dir()
    if raw_format(folder) != "csv":
        return
    failures = [
        GateFailure(f"source.raw.{table}", "model", STAGING_OF[table], None, None, None, problem,
                    raw_file=str(folder / f"{table}.csv"))  # fmt: skip
        for table, problem in unreadable_csv(folder).items()
    ]
    if failures:
        raise GateFailed(as_of_date, failures, [], _published_now(target))


def _published_now(target: str) -> str:
    """What the published marts hold right now, as a clause for a GateFailed message."""
    if target != "duckdb":
        return "the published Spark marts were not touched"
    try:
        return describe_published(published_dates())
    except SandboxError:
        return "the published marts were not touched"


def _detail(node, failure: GateFailure, fmt: str) -> str | None:
    """What a failing check saw, in words (DuckDB target; None when there is nothing to add).

    The project's own checks (freshness, completeness, has_rows) return a ``problem`` column:
    its first value is re-read by running the test's compiled query once more (only when it
    failed). An unreadable timestamp is looked up in the raw file itself.
    """
    key = (failure.model, failure.column)
    if failure.test == "not_null" and key in RAW_TIMESTAMPS and failure.raw_file:
        return _unreadable_timestamps(Path(failure.raw_file), RAW_COLUMN_OF[key], fmt)
    sql = getattr(node, "compiled_code", None) or ""
    if failure.kind != "data test" or " as problem" not in sql:
        return None
    try:
        with connect(read_only=True) as con:
            row = con.execute(f"select problem from ({sql}) as failing limit 1").fetchone()
    except Exception:  # noqa: BLE001 - a detail is a courtesy; the failure itself stands
        return None
    return _clean(str(row[0])) if row and row[0] is not None else None


def _unreadable_timestamps(path: Path, column: str, fmt: str) -> str:
    """Name the raw column, how many of its values are unreadable and where the first ones are.

    The values themselves are not shown: raw text is user-controlled and must not reach
    a message (see tests/reliability/test_hostile_content.py).
    """
    import duckdb

    reader = (
        "read_parquet(?)"
        if fmt == "parquet"
        else "read_csv(?, header=true, all_varchar=true, delim=',', quote='\"', escape='\"', "
        "max_line_size=33554432)"
    )
    quoted = '"' + column.replace('"', '""') + '"'
    try:
        with duckdb.connect() as con:
            con.execute("set TimeZone = 'UTC'")
            found = con.execute(
                f"select count(*), list(n order by n)[1:3] from ("
                f"select row_number() over () as n, {quoted} as v from {reader}) "
                "where v is not null and try_cast(v as timestamptz) is null",
                [str(path)],
            ).fetchone()
    except duckdb.Error:
        found = (0, [])
    count, first = found[0], found[1] or []
    if not count:
        return f"column {column} of {path.name} has empty values"
    where = ", ".join(str(n) for n in first)
    return (
        f"column {column} of {path.name} holds {count} value{'s' if count != 1 else ''} that "
        f"{'are' if count != 1 else 'is'} not a timestamp or name an unknown time zone "
        f"(data row{'s' if len(first) != 1 else ''} {where}); write ISO 8601, e.g. "
        "2026-10-31 23:58:01, with an optional Z, +02:00 or zone name such as Europe/Berlin"
    )


@holds_step("sandbox docs")
def docs(as_of_date: date | str) -> Path:
    """Write dbt's static docs site (one self-contained HTML file) and return its path.

    ``dbt docs generate --static`` works offline; the catalog (column types, row counts) comes
    from the warehouse, so build first for the fullest picture.
    """
    as_of_date = parse_date(as_of_date)
    ensure_writable()
    outcome = invoke([*dbt_args("docs generate", as_of_date), "--static"])
    page = target_dir() / "static_index.html"
    if not outcome.success or not page.exists():
        reason = " ".join(str(outcome.exception or "see the dbt log").split())
        raise SandboxError(f"dbt docs generate failed: {reason} ({target_dir() / 'logs'})")
    return page
