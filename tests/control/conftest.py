"""Fixtures and helpers for the control-plane tests (tests in other folders import them).

Fixture functions are named ``<fixture>_fixture`` (registered under ``<fixture>``), so a test's
parameter does not shadow the imported name (ruff F811).

Airflow reads ``AIRFLOW_HOME`` once, when it is first imported, so every in-process test
shares one throw-away home (:func:`airflow_home_session`); tests that run DAGs do it in a
child process (``python -m sandbox.cli run``) with their own copy of a migrated home.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.config import DEFAULT_RAW_DIR, ROOT

DAGS = ROOT / "dags"
_SESSION: dict[str, Path] = {}


@pytest.fixture(scope="session", name="airflow_home_session")
def airflow_home_session_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point this test process's Airflow at a temporary home before anything imports it.

    Each module that imports this fixture gets its own session-scoped instance, so the home
    is kept here: Airflow can only be configured once per process.
    """
    from sandbox.control import airflow_env

    if "home" not in _SESSION:
        _SESSION["home"] = tmp_path_factory.mktemp("airflow_home")
        os.environ["SANDBOX_AIRFLOW_HOME"] = str(_SESSION["home"])
        airflow_env.configure()
    return _SESSION["home"]


@pytest.fixture(scope="session", name="migrated_home")
def migrated_home_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow home with a migrated metadata DB, made once per process (copy it)."""
    if "migrated" not in _SESSION:
        home = tmp_path_factory.mktemp("migrated_airflow")
        env = {**os.environ, "SANDBOX_AIRFLOW_HOME": str(home)}
        code = "from sandbox.control import airflow_env as a; a.migrate_home(a.configure())"
        subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
        _SESSION["migrated"] = home
    return _SESSION["migrated"]


@pytest.fixture(name="airflow_home")
def airflow_home_fixture(
    migrated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """This test's own Airflow home (a copy of the migrated one), with short waits."""
    home = tmp_path / "airflow"
    shutil.copytree(migrated_home, home)
    monkeypatch.setenv("SANDBOX_AIRFLOW_HOME", str(home))
    monkeypatch.setenv("SANDBOX_SENSOR_TIMEOUT_S", "3")
    monkeypatch.setenv("SANDBOX_SENSOR_POKE_S", "1")
    monkeypatch.setenv("SANDBOX_RETRY_DELAY_S", "1")
    return home


@pytest.fixture(name="bad_raw_dir")
def bad_raw_dir_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped raw files with one user row duplicated (breaks a unique test)."""
    folder = tmp_path / "bad_raw"
    shutil.copytree(DEFAULT_RAW_DIR, folder)
    users = folder / "users.csv"
    lines = users.read_text().splitlines(keepends=True)
    users.write_text("".join(lines) + lines[1])
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(folder))
    return folder


def sandbox_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``sandbox run ARGS`` in a child process (its own Airflow) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "run", *args],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def task_states(home: Path, dag_id: str) -> dict[str, str | None]:
    """Task id -> state of the latest run of ``dag_id`` in the home's metadata DB."""
    with sqlite3.connect(home / "airflow.db") as db:
        run_id = db.execute(
            "select run_id from dag_run where dag_id = ? order by id desc limit 1", [dag_id]
        ).fetchone()[0]
        rows = db.execute(
            "select task_id, state from task_instance where dag_id = ? and run_id = ?",
            [dag_id, run_id],
        ).fetchall()
    return dict(rows)


def tree_digest(*folders: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folders`` (git-ignored build output and
    ``skip`` names excluded)."""
    import hashlib

    ignored = {"target", "logs", "dbt_packages", "__pycache__", *skip}
    digest = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not ignored & set(path.relative_to(folder).parts):
                digest[str(path.relative_to(ROOT))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest
