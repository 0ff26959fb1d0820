"""The ``spark`` target: what it needs (dbt-spark, PySpark, Java 17), where its tables live."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

from sandbox.config import SandboxError, dbt_project_dir, warehouse_path

SPARK_NEEDS = (
    "the spark target needs the [spark] extra and Java 17: pip install -e '.[spark]' and "
    "apt-get install openjdk-17-jre-headless"
)


def spark_warehouse_dir() -> Path:
    """``spark-warehouse/`` (tables, metastore) beside the DuckDB file: one per warehouse."""
    return warehouse_path().parent / "spark-warehouse"


def java_major() -> int | None:
    """The major version of the ``java`` PySpark will start (``$JAVA_HOME/bin/java`` or PATH)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(?:1\.)?(\d+)', out.stderr + out.stdout)  # "1.8.0" is Java 8
    return int(found.group(1)) if found else None


def prepare_spark() -> None:
    """Check what the spark target needs and export the settings profiles.yml and Spark read."""
    missing = [
        name
        for name, module in (("dbt-spark", "dbt.adapters.spark"), ("pyspark", "pyspark"))
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise SandboxError(f"{SPARK_NEEDS} ({' and '.join(missing)} not installed)")
    java = java_major()
    if java is None or java < 17:
        found = "no java found" if java is None else f"found Java {java}"
        raise SandboxError(f"{SPARK_NEEDS} ({found}; set JAVA_HOME or put java on PATH)")
    warnings.filterwarnings(  # printed at import; we hand Spark no pandas objects
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    with contextlib.suppress(ImportError):  # PySpark 3.5 has no such logger
        from pyspark.logger import PySparkLogger

        # PySpark 4 also logs every failing statement as JSON; dbt reports it already
        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
            PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    wanted = spark_warehouse_dir()
    _check_running_session(wanted)
    wanted.mkdir(parents=True, exist_ok=True)
    os.environ["SANDBOX_SPARK_WAREHOUSE"] = str(wanted)
    os.environ.setdefault("SPARK_CONF_DIR", str(dbt_project_dir() / "spark"))  # log4j2: errors only
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # offline: no hostname lookups


def _check_running_session(wanted: Path) -> None:
    """dbt-spark keeps its session per process, and Spark cannot move its warehouse in one."""
    from pyspark import SparkContext

    running = SparkContext._active_spark_context
    if running is None:
        return
    current = running.getConf().get("spark.sql.warehouse.dir") or ""
    if Path(current.removeprefix("file:")).resolve() != wanted:
        raise SandboxError(
            f"this process already runs Spark on {current}, and Spark cannot switch to "
            f"{wanted} inside one process: build from a new process (restart the notebook "
            "kernel, or run `sandbox build --target spark`)."
        )
