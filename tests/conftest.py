"""Shared fixtures: every test gets its own warehouse and raw folder, never the user's."""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from sandbox.config import DEFAULT_RAW_DIR, SHIPPED_AS_OF_DATE, cache_dir

AS_OF = SHIPPED_AS_OF_DATE

# `make test` hands whole files to parallel workers in collection order
# (`--dist loadfile --no-loadscope-reorder`), so the longest files go first: none of them then
# starts last and runs alone while the other workers sit idle. The lengths are measured:
# `make test` (`--store-durations`) keeps each file's seconds in the virtualenv's cache, and
# tests/durations.json (committed) gives a fresh clone its first order.
DURATIONS = Path(__file__).with_name("durations.json")
MEASURED: defaultdict[str, float] = defaultdict(float)  # this run's seconds per file
UNMEASURED = {"learner_path": math.inf, "slow": 1e9}  # seconds assumed before a measurement


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations",
        action="store_true",
        help="keep each test file's measured seconds for the next run's order",
    )


def _local_durations() -> Path | None:
    """This checkout's own measurements (in the virtualenv, never committed)."""
    folder = cache_dir("test-durations")
    return folder / "durations.json" if folder else None


def _stored_durations() -> dict[str, float]:
    """Seconds per test file from the last `make test` here, else from the committed file."""
    for path in (_local_durations(), DURATIONS):
        try:
            if path:
                return json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return {}


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first, as measured. A file not measured yet (new or moved) counts as long
    when it has a slow test (the learner's path longest of all), as short when it has none."""
    seconds = _stored_durations()
    guess: dict[str, float] = defaultdict(float)
    for item in items:
        for marker, assumed in UNMEASURED.items():
            if item.get_closest_marker(marker):
                guess[_file(item)] = max(guess[_file(item)], assumed)
    items.sort(key=lambda item: -seconds.get(_file(item), guess[_file(item)]))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add each phase's duration (set-up, call, teardown) to its file's total."""
    MEASURED[report.nodeid.split("::")[0]] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With --store-durations, merge this run's per-file seconds into the local measurements."""
    config = session.config
    local = _local_durations()
    if not config.getoption("store_durations") or hasattr(config, "workerinput") or not local:
        return
    root = Path(config.rootpath)
    stored = {path: s for path, s in _stored_durations().items() if (root / path).exists()}
    stored.update({path: round(s, 1) for path, s in MEASURED.items()})
    local.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")


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
