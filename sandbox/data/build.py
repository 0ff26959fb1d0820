"""Build the data plane for a date: ``dbt build`` in this process, then publish, into a result."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sandbox.config import SandboxError, parse_date, warehouse_path
from sandbox.data.dbt_runner import dbt_args, invoke, parsed_manifest, target_dir
from sandbox.data.gate import check_raw_files, check_results, kind, relation
from sandbox.data.publish import CANDIDATE_SCHEMA, publish, publish_spark
from sandbox.data.spark import prepare_spark, spark_warehouse_dir
from sandbox.warehouse import connect, ensure_writable, step_lock

LAYERS = ("staging", "intermediate", "marts")
TARGETS = ("duckdb", "spark")


@dataclass(frozen=True)
class NodeOutcome:
    """One node of a successful dbt build."""

    name: str
    kind: str
    seconds: float


@dataclass
class BuildResult:
    """A successful build: what ran, how long it took and what the warehouse now holds."""

    as_of_date: date
    target: str
    warehouse: Path
    nodes: list[NodeOutcome]
    elapsed_s: float
    rows: dict[str, int]
    publish_s: float  # publishing the audited candidates, after dbt (not in ``elapsed_s``)
    models: int
    data_tests: int
    unit_tests: int

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
        summary = (
            f"dbt build for {self.as_of_date} on {self.target}: {self.checks()} passed in "
            f"{self.elapsed_s:.1f} s; marts published for {self.as_of_date} in {self.publish_s:.2f} s"
        )
        rows = [f"  {name:<45} {count:>12,} rows" for name, count in self.rows.items()]
        return "\n".join([summary, *rows, f"warehouse: {self.warehouse}"])


@step_lock("sandbox build")
def build(
    as_of: date | str, *, target: str = "duckdb", unit_tests: bool = False, progress: bool = False
) -> BuildResult:
    """``dbt build`` for ``as_of``, then publish the candidate marts together (write-audit-publish);
    :class:`GateFailed` when any check fails, and nothing is published."""
    as_of = parse_date(as_of)
    if target not in TARGETS:
        raise SandboxError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    if target == "spark":
        prepare_spark()
    args = dbt_args("build", as_of, target)
    if not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    if target == "duckdb":
        ensure_writable()  # a clear "in use by PID" now rather than dbt's raw lock error
    check_raw_files(as_of, target)
    started = time.perf_counter()
    with _progress_bar(as_of, progress) as callbacks:
        manifest = parsed_manifest(target) if target == "duckdb" else None
        outcome = invoke(args, callbacks, manifest)
    elapsed = time.perf_counter() - started
    if outcome.result is None or not hasattr(outcome.result, "results"):
        reason = " ".join(str(outcome.exception or "dbt stopped before running any node").split())
        raise SandboxError(f"dbt could not start the build for {as_of}: {reason}")
    check_results(as_of, outcome.result.results, target)
    return _publish(as_of, target, outcome.result.results, elapsed)


@contextlib.contextmanager
def _progress_bar(as_of: date, shown: bool) -> Iterator[list]:
    """dbt callbacks that advance a tqdm bar, one step per node (none when not ``shown``)."""
    from tqdm.auto import tqdm

    with tqdm(desc=f"dbt build {as_of}", unit="node", leave=False, disable=not shown) as bar:

        def advance(event) -> None:
            if event.info.name == "LogStartLine" and bar.total is None:
                bar.reset(total=event.data.total)
            elif event.info.name == "NodeFinished":
                bar.update(1)

        yield [advance] if shown else []


def _publish(as_of: date, target: str, results: list, elapsed: float) -> BuildResult:
    """Publish the audited candidates and describe the build (row counts per relation)."""
    nodes = [NodeOutcome(r.node.name, kind(r.node), r.execution_time) for r in results]
    models = [r.node for r in results if kind(r.node) == "model"]
    candidates = sorted(f"{n.schema}.{n.name}" for n in models if n.schema == CANDIDATE_SCHEMA)
    started = time.perf_counter()
    (publish if target == "duckdb" else publish_spark)(as_of, candidates)
    publish_s = time.perf_counter() - started
    built = {relation(n) for n in models}
    rows = _row_counts(sorted(built, key=lambda r: (LAYERS.index(r.split(".")[0]), r)), target)
    where = warehouse_path() if target == "duckdb" else spark_warehouse_dir()
    kinds = Counter(n.kind for n in nodes)
    counts = kinds["model"], kinds["data test"], kinds["unit test"]
    return BuildResult(as_of, target, where, nodes, elapsed, rows, publish_s, *counts)


def _row_counts(relations: list[str], target: str) -> dict[str, int]:
    """Rows per relation, from the warehouse or the Spark session dbt-spark left running."""
    if target == "spark":
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.getOrCreate()  # the session dbt used, not a new one
        return {r: spark.table(r).count() for r in relations}
    with connect(read_only=True) as con:
        return {r: con.execute(f"select count(*) from {r}").fetchone()[0] for r in relations}


@step_lock("sandbox docs")
def docs(as_of: date | str) -> Path:
    """Write dbt's static docs site (one HTML file) and return its path; the catalog (column
    types, row counts) comes from the warehouse: build first."""
    as_of = parse_date(as_of)
    ensure_writable()
    outcome = invoke([*dbt_args("docs generate", as_of), "--static"])
    page = target_dir() / "static_index.html"
    if not outcome.success or not page.exists():
        reason = " ".join(str(outcome.exception or "see the dbt log").split())
        raise SandboxError(f"dbt docs generate failed: {reason} ({target_dir() / 'logs'})")
    return page
