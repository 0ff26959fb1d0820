"""A notebook's set-up: its own warehouse and Airflow home, and the labels of simulated output."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sandbox.config import ROOT, SHIPPED_AS_OF_DATE, llm_choice, warehouse_path
from sandbox.decision.summary import SIMULATED_COST

SCRATCH_ENV = "SANDBOX_NOTEBOOK_SCRATCH"  # set by `make test`, `make notebooks`, the grader

AS_OF = SHIPPED_AS_OF_DATE

_BASE: Path | None = None


def notebook_base() -> Path:
    """The folder that holds every notebook's own state (see :func:`notebook_home`)."""
    global _BASE
    if scratch := os.environ.get(SCRATCH_ENV):
        return Path(scratch).expanduser().resolve()
    if _BASE is None:  # remembered before setup() points SANDBOX_WAREHOUSE at the notebook's own
        _BASE = warehouse_path().parent / "notebooks"
    return _BASE


def notebook_home(notebook: str) -> Path:
    """The folder of one notebook's own warehouse, Airflow home and generated files."""
    return notebook_base() / notebook


def has_table(name: str) -> bool:
    """True when this notebook's warehouse holds table ``schema.name``."""
    from sandbox.warehouse import connect, table_exists

    with connect(read_only=True) as con:
        return table_exists(con, name)


def setup(notebook: str) -> Path:
    """Give this notebook its own, fresh warehouse and Airflow home; print what it uses; return it.
    The folder is emptied unless Airflow is already loaded in this kernel (it cannot be re-pointed).
    Offline unless ``SANDBOX_LLM=anthropic`` was set before the kernel started."""
    home = notebook_home(notebook)
    fresh = "airflow.configuration" not in sys.modules
    if fresh and home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SANDBOX_WAREHOUSE"] = str(home / "sandbox.duckdb")
    os.environ["SANDBOX_AIRFLOW_HOME"] = str(home / "airflow")
    for name in ("SANDBOX_RAW_DIR", "SANDBOX_DBT_PROJECT_DIR", "SANDBOX_MOCK_FAULTS"):
        os.environ.pop(name, None)
    os.environ.setdefault("SANDBOX_LLM", "mock")

    import pandas as pd

    pd.set_option("display.max_colwidth", 140)
    pd.set_option("display.width", 160)
    path = warehouse_path()
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else f"…/{notebook}/{path.name}"
    llm = llm_choice()
    mode = "offline: a deterministic fake of the Messages API" if llm == "mock" else "the real API"
    state = "emptied now" if fresh else "kept: restart the kernel to start fresh"
    print(f"LLM: {llm} ({mode})")
    print(f"warehouse: {where} (this notebook's own; {state})")
    print(f"as-of date of the shipped data: {AS_OF}")
    return home


def cost_note() -> str:
    """``"(simulated: offline fake at list prices)"`` offline, ``""`` with the real API."""
    return f"({SIMULATED_COST})" if llm_choice() == "mock" else ""


def simulated(what: str = "costs and answers") -> None:
    """Print the label a cell's simulated ``what`` carries offline (nothing with the real API)."""
    labels = {
        "answer": "answers from the offline fake, not from the model named",
        "cost": "costs at list prices, no money spent",
    }
    if llm_choice() == "mock":
        print(f"(simulated: {'; '.join(v for k, v in labels.items() if k in what) or what})")
