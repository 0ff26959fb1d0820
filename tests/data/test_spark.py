"""The ``spark`` target: the same models on a local Spark session give DuckDB's mart, row for row.

Slow (a Spark build is ≈30–60 s here) and skipped, with the reason, where the ``[spark]`` extra
or Java 17 is missing. All Spark builds of this module share one warehouse folder: dbt-spark
keeps one Spark session per process, and Spark cannot move its warehouse inside a process.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from sandbox.data import GateFailed, build, generate
from sandbox.data.drills import broken_inputs
from sandbox.data.spark import java_major, spark_warehouse_dir
from tests.conftest import AS_OF

MART = "marts.fct_user_features_for_ai"


def _missing() -> str | None:
    for package, module in (("dbt-spark", "dbt.adapters.spark"), ("pyspark", "pyspark")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed: pip install -e '.[spark]'"
    java = java_major()  # the same rule as `sandbox build --target spark`
    if java is None or java < 17:
        found = "no java" if java is None else f"Java {java}"
        return f"{found}, needs 17: apt-get install openjdk-17-jre-headless"
    return None


MISSING = _missing()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(MISSING is not None, reason=f"spark target: {MISSING}"),
]


@pytest.fixture(scope="module")
def spark_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder whose ``spark-warehouse/`` every Spark build of this module uses."""
    yield tmp_path_factory.mktemp("spark")
    _stop_spark()


def _stop_spark() -> None:
    """End this process's Spark session and its JVM, so neither outlives the module: the
    worker goes on with other test files, and py4j logs to closed streams at interpreter exit."""
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
    gateway = SparkContext._gateway
    if gateway is not None:
        gateway.shutdown()
        proc = getattr(gateway, "proc", None)
        if proc is not None:  # the JVM exits when its stdin closes
            proc.stdin.close()
            proc.wait(timeout=60)
        SparkContext._gateway = SparkContext._jvm = None


def _duckdb_mart(path: Path) -> tuple[list[str], list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as con:
        rel = con.sql(f"select * from {MART} order by user_id")
        return rel.columns, rel.fetchall()


def _spark_mart() -> tuple[list[str], list[tuple]]:
    """Spark's mart, read from its Parquet files with DuckDB (timestamps back to naive UTC)."""
    files = spark_warehouse_dir() / "marts.db" / "fct_user_features_for_ai" / "*.parquet"
    with duckdb.connect() as con:
        parquet = f"read_parquet('{files.as_posix()}')"
        columns = con.sql(f"describe select * from {parquet}").fetchall()
        select = ", ".join(
            f"timezone('UTC', {name}) as {name}" if kind == "TIMESTAMP WITH TIME ZONE" else name
            for name, kind, *_ in columns
        )
        rel = con.sql(f"select {select} from {parquet} order by user_id")
        return rel.columns, rel.fetchall()


def _build_both(spark_home: Path, duckdb_name: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Build AS_OF on DuckDB (into ``duckdb_name``) and on Spark; the Spark mart's row count."""
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(spark_home / duckdb_name))
    build(AS_OF, target="duckdb")
    result = build(AS_OF, target="spark", unit_tests=True)
    assert result.target == "spark" and result.models == 6 and result.unit_tests == 3
    assert result.warehouse == spark_warehouse_dir() == spark_home / "spark-warehouse"
    return result.rows[MART]


def _assert_same_mart(duckdb_file: Path) -> None:
    duck_columns, duck_rows = _duckdb_mart(duckdb_file)
    spark_columns, spark_rows = _spark_mart()
    assert spark_columns == duck_columns
    assert len(spark_rows) == len(duck_rows) > 0
    for duck_row, spark_row in zip(duck_rows, spark_rows, strict=True):
        assert spark_row == duck_row


def test_shipped_data_gives_the_same_mart_on_spark_and_duckdb(
    spark_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _build_both(spark_home, "shipped.duckdb", monkeypatch) == 500
    _assert_same_mart(spark_home / "shipped.duckdb")


def test_parquet_raw_files_give_the_same_mart_on_spark_and_duckdb(
    spark_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "raw"
    generate(users=800, out=raw, fmt="parquet", as_of=AS_OF)
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(raw))
    assert _build_both(spark_home, "parquet.duckdb", monkeypatch) > 0
    _assert_same_mart(spark_home / "parquet.duckdb")


def test_a_mart_test_failure_on_spark_publishes_nothing(
    spark_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit, then publish, on Spark too: the mart's failing data test stops the candidate."""
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(spark_home / "shipped.duckdb"))
    before = _spark_mart()
    assert before[1], "published by an earlier test of this module"
    with broken_inputs("mart_test_failure"):
        with pytest.raises(GateFailed) as caught:
            build(AS_OF, target="spark")
    failure = next(f for f in caught.value.failures if f.test == "accepted_values")
    assert (failure.model, failure.column) == (MART, "plan_tier")
    assert "the published Spark marts were not touched" in str(caught.value)
    assert _spark_mart() == before


def test_implausible_values_fail_the_gate_on_spark_too(
    spark_home: Path, raw_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plausibility tests are portable SQL: Spark runs them as DuckDB does."""
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(spark_home / "shipped.duckdb"))
    with open(raw_copy / "users.csv", "a", encoding="utf-8") as fh:
        fh.write('"u_future","pro",2027-03-01 10:00:00,"NL"\n')
        fh.write('"u_country","free",2025-01-01 00:00:00,"Netherlands"\n')
    with pytest.raises(GateFailed) as caught:
        build(AS_OF, target="spark")
    found = {(f.test, f.model, f.column, f.failing_rows) for f in caught.value.failures}
    assert found == {
        ("not_after_export", "staging.stg_users", "signed_up_at", 1),
        ("two_letter_code", "staging.stg_users", "country_code", 1),
    }
