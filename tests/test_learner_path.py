"""The learner's path: ``make pipeline``, then every notebook, in order, twice, as ``make lab``
leaves them.

Nothing here sets ``SANDBOX_NOTEBOOK_SCRATCH``: each notebook must find its own state by
itself. The only thing moved is the root every path hangs off — ``SANDBOX_WAREHOUSE`` (and
``SANDBOX_AIRFLOW_HOME``) point into a temporary folder, exactly as if the repository lived
there — so the test never reads or writes the developer's own ``warehouse/``. The pipeline's
shipped date must come out of both passes untouched: the notebooks work beside it, not in it.
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


def test_pipeline_then_every_notebook_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("SANDBOX_NOTEBOOK_SCRATCH", raising=False)
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(tmp_path / "warehouse" / "sandbox.duckdb"))
    monkeypatch.setenv("SANDBOX_AIRFLOW_HOME", str(tmp_path / ".airflow"))
    sandbox = Path(sys.executable).with_name("sandbox")
    run = subprocess.run(
        [str(sandbox), "run", "--date", str(SHIPPED_AS_OF_DATE)],
        capture_output=True, text=True, check=False, env=os.environ.copy(),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    shipped = _pipeline_fingerprint()

    for round_ in (1, 2):
        for path in NOTEBOOKS:
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(nb, timeout=1200, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
            try:
                client.execute()
            except Exception as exc:  # name the notebook and the pass in the failure
                pytest.fail(f"pass {round_}, {path.name}: {str(exc)[-3000:]}")
            home = tmp_path / "warehouse" / "notebooks" / path.stem
            assert (home / "sandbox.duckdb").exists(), f"{path.name} did not use its own warehouse"
        assert _pipeline_fingerprint() == shipped, f"pass {round_} changed the pipeline's warehouse"
