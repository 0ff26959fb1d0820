"""Shared fixtures: every test gets its own warehouse and raw folder, never the user's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sandbox.config import DEFAULT_RAW_DIR, SHIPPED_AS_OF_DATE

AS_OF = SHIPPED_AS_OF_DATE

# `make test` hands whole files to parallel workers in collection order
# (`--dist loadfile --no-loadscope-reorder`). The longest files go first, so none of them
# starts last and runs alone while the other workers sit idle (measured on 2 cores: the
# learner's path about 8 min, the real scheduler 5, the browser test 3, ...).
LONGEST_FIRST = (
    "tests/course/test_learner_path.py",
    "tests/test_airflow_scheduler.py",
    "tests/test_browser.py",
    "tests/reliability/test_control_signals.py",
    "tests/course/test_checks.py",
    "tests/test_control_pipeline.py",
    "tests/test_spark.py",
    "tests/reliability/test_journal.py",
    "tests/reliability/test_bad_input_pipeline.py",
    "tests/reliability/test_drift_drills.py",
    "tests/test_build.py",
    "tests/reliability/test_wap_publish.py",
    "tests/test_bench_smoke.py",
    "tests/test_control_acceptance.py",
    "tests/reliability/test_data_time_zones.py",
    "tests/reliability/test_bad_input.py",
    "tests/reliability/test_secrets.py",
    "tests/reliability/test_concurrency.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (see LONGEST_FIRST); the rest keep their order, after them."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the warehouse at a temporary file and clear settings that would leak in."""
    warehouse = tmp_path / "warehouse" / "sandbox.duckdb"
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(warehouse))
    for name in (
        "SANDBOX_RAW_DIR",
        "SANDBOX_DBT_PROJECT_DIR",
        "SANDBOX_LLM",
        "SANDBOX_MOCK_LATENCY_MS",
        "SANDBOX_MOCK_FAULTS",
        "SANDBOX_MOCK_REQUEST_LOG",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    return warehouse


@pytest.fixture
def raw_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the shipped raw files, used as SANDBOX_RAW_DIR."""
    folder = tmp_path / "raw"
    shutil.copytree(DEFAULT_RAW_DIR, folder)
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse built once per session from the shipped data (copy it before changing it)."""
    from sandbox.data import build

    path = tmp_path_factory.mktemp("built") / "sandbox.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SANDBOX_WAREHOUSE", str(path))
        mp.delenv("SANDBOX_RAW_DIR", raising=False)
        build(AS_OF)
    return path


@pytest.fixture
def warehouse(isolated_env: Path, built_warehouse: Path) -> Path:
    """This test's own copy of the session's built warehouse."""
    isolated_env.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built_warehouse, isolated_env)
    return isolated_env
