"""The learner's path: ``make pipeline``, then every notebook twice, as ``make lab`` leaves them.

Nothing here sets ``SANDBOX_NOTEBOOK_SCRATCH``: each notebook must find its own state by
itself. The only thing moved is the root every path hangs off — ``SANDBOX_WAREHOUSE`` (and
``SANDBOX_AIRFLOW_HOME``) point into a temporary folder, exactly as if the repository lived
there — so the test never reads or writes the developer's own ``warehouse/``.

1. ``sandbox run`` for the shipped date (what ``make pipeline`` runs).
2. Pass 1: every notebook under nbval, two at a time in no fixed order, each compared with
   its stored outputs (so the lesson a learner reads is the one the code produces).
3. Pass 2: every notebook again, in order 00 → 07, in the same environment, again compared:
   Restart & Run All a second time gives the same lesson.

The pipeline's shipped date must come out of both passes untouched: the notebooks work beside
it, not in it. This is the only place ``make test`` executes the notebooks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.config import ROOT, SHIPPED_AS_OF_DATE

pytestmark = [pytest.mark.slow, pytest.mark.learner_path]

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BIN = Path(sys.executable).parent


def _pipeline_fingerprint() -> tuple:
    from sandbox.warehouse import connect

    with connect(read_only=True) as con:
        return (
            con.execute(
                "select count(*), sum(cost_usd) from marts.user_recommendations"
            ).fetchone(),
            con.execute("select count(*) from decision.llm_calls").fetchone(),
            con.execute("select count(*) from ops.pipeline_runs").fetchone(),
        )


def _nbval(*args: str) -> subprocess.CompletedProcess:
    """Run pytest's nbval over the notebooks in this environment; output kept for the report."""
    return subprocess.run(
        [str(BIN / "pytest"), "-p", "no:cacheprovider", "-q", "--nbval", "--nbval-current-env",
         "-o", "addopts=", *args, *map(str, NOTEBOOKS)],
        capture_output=True, text=True, check=False, env=os.environ.copy(), cwd=ROOT,
    )  # fmt: skip


def test_pipeline_then_every_notebook_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SANDBOX_NOTEBOOK_SCRATCH", raising=False)
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(tmp_path / "warehouse" / "sandbox.duckdb"))
    monkeypatch.setenv("SANDBOX_AIRFLOW_HOME", str(tmp_path / ".airflow"))
    run = subprocess.run(
        [str(BIN / "sandbox"), "run", "--date", str(SHIPPED_AS_OF_DATE)],
        capture_output=True, text=True, check=False, env=os.environ.copy(),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    shipped = _pipeline_fingerprint()

    passes = {1: ("-n", "2", "--dist", "loadfile"), 2: ("-n", "0")}
    for round_, how in passes.items():
        result = _nbval(*how)
        assert result.returncode == 0, f"pass {round_}:\n{result.stdout[-6000:]}"
        for path in NOTEBOOKS:
            home = tmp_path / "warehouse" / "notebooks" / path.stem
            assert (home / "sandbox.duckdb").exists(), f"{path.name} did not use its own warehouse"
        assert _pipeline_fingerprint() == shipped, f"pass {round_} changed the pipeline's warehouse"
