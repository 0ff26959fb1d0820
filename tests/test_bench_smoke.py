"""The benchmarks' smoke mode: every benchmark script runs end to end on small sizes.

``make bench`` runs the full sizes (minutes, not part of ``make test``); this runs each one's
``--quick`` mode through ``bench/run_all.py --quick`` in about a minute, so a change that
breaks a benchmark shows up in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_benchmark_runs_in_quick_mode(tmp_path: Path) -> None:
    env = {**os.environ, "BENCH_OUT": str(tmp_path / "bench-out")}
    for name in ("SANDBOX_WAREHOUSE", "SANDBOX_AIRFLOW_HOME", "SANDBOX_NOTEBOOK_SCRATCH"):
        env.pop(name, None)
    env["SANDBOX_WAREHOUSE"] = str(tmp_path / "unused" / "sandbox.duckdb")  # never the user's
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    sections = ("== Data plane", "== Decision plane", "== Projection", "== End to end",
                "== Evaluations and drift")  # fmt: skip
    for section in sections:
        assert section in out, out[-3000:]
    for line in (
        "ratio dbt SQL phase / direct DuckDB",
        "throughput / ideal W/L",
        "engine CPU per row",
        "staging write, one bulk commit",
        "1M users, escalation, batch: cost",
        "planes called directly: process wall",
        "offline eval, 76 cases, warm (summaries cached)",
        "drift check, 10,000 answers/day, 7-day window",
    ):
        assert line in out, f"{line!r} missing from:\n{out[-3000:]}"
    assert "0 target(s) missed" in out  # quick mode states no targets: sizes too small
    assert "wrote bench/RESULTS.md" not in out  # only the full run writes the results table
