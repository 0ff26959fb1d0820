"""The local Airflow installation: where it lives, how it is configured, when it is migrated.

Airflow reads its configuration once, when ``airflow`` is first imported, so
:func:`configure` must run before that import. Everything is set through
``AIRFLOW__SECTION__KEY`` environment variables, which win over ``airflow.cfg``:

- ``AIRFLOW_HOME`` = ``SANDBOX_AIRFLOW_HOME`` or ``<repo>/.airflow`` (git-ignored);
- the DAGs folder is the repository's ``dags/``; Airflow's example DAGs are not loaded;
- the metadata DB is the SQLite file ``<home>/airflow.db``, created by ``airflow db migrate``
  the first time it is needed (about 5 s). ``make airflow`` runs four processes on it
  (scheduler, dag-processor, triggerer, api-server), so it is put in WAL mode (readers no
  longer block the writer) and every connection waits up to :data:`SQLITE_BUSY_TIMEOUT_S`
  for a busy database instead of SQLite's default 5 s, after which a request fails with
  "database is locked" (seen as a 500 "Database error" from the REST API on a busy machine).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from sandbox.config import ROOT, SandboxError

DAGS_FOLDER = ROOT / "dags"
DEFAULT_HOME = ROOT / ".airflow"
SQLITE_BUSY_TIMEOUT_S = 20
"""Four times SQLite's default, and well under the REST client's 60 s: a request that cannot
get the lock in time ends as a 500 "Database error" the client retries (``ui.api``), never as
a client-side timeout. 60 s was tried: once, the api-server stopped answering every request
for over a minute while the DB was contended."""
# Airflow imports this dict (``[database] sql_alchemy_connect_args``) and passes it to
# sqlite3.connect / aiosqlite.connect in every one of its processes.
SQLITE_CONNECT_ARGS = {"timeout": SQLITE_BUSY_TIMEOUT_S}
SQLITE_CONNECT_ARGS_ASYNC = {"timeout": SQLITE_BUSY_TIMEOUT_S}


def airflow_home() -> Path:
    """The Airflow home folder (``SANDBOX_AIRFLOW_HOME``, default ``<repo>/.airflow``)."""
    return Path(os.environ.get("SANDBOX_AIRFLOW_HOME") or DEFAULT_HOME).expanduser().resolve()


def metadata_db() -> Path:
    """The SQLite file holding Airflow's DAG runs and task instances."""
    return airflow_home() / "airflow.db"


def log_dir() -> Path:
    """Where task logs and the captured output of ``sandbox run`` go."""
    return airflow_home() / "logs"


def airflow_environ(home: Path | None = None) -> dict[str, str]:
    """The environment variables that point Airflow at the sandbox's home, DB and DAGs."""
    home = home or airflow_home()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "sandbox.control.airflow_env.SQLITE_CONNECT_ARGS",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "sandbox.control.airflow_env.SQLITE_CONNECT_ARGS_ASYNC",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(
            home / "logs" / "dag_processor"
        ),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        # The UI is for looking at runs that `sandbox run` recorded; nothing schedules them.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    }


def configure() -> Path:
    """Point this process (and its children) at the sandbox's Airflow; return the home.

    Raises :class:`SandboxError` when ``airflow`` was already imported with another home,
    because Airflow cannot be re-pointed once it has read its configuration.
    """
    home = airflow_home()
    wanted = airflow_environ(home)
    if "airflow.configuration" in sys.modules:
        from airflow.configuration import AIRFLOW_HOME

        if Path(AIRFLOW_HOME).resolve() != home:
            raise SandboxError(
                f"Airflow was already imported in this process with AIRFLOW_HOME={AIRFLOW_HOME}; "
                f"the sandbox uses {home}: restart the kernel (or process) and call the sandbox "
                "before importing airflow yourself"
            )
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    os.environ.update(wanted)
    return home


def ensure_migrated() -> Path:
    """Create or upgrade the SQLite metadata DB (``airflow db migrate``) when it is missing."""
    home = configure()
    db = metadata_db()
    if db.exists() and db.stat().st_size > 0:
        use_wal(db)
        return db
    log = log_dir() / "db-migrate.log"
    with log.open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env={**os.environ, **airflow_environ(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        db.unlink(missing_ok=True)
        raise SandboxError(
            f"`airflow db migrate` failed (exit {proc.returncode}); its output is in {log}. "
            f"Delete {home} and try again."
        )
    use_wal(db)
    return db


def use_wal(db: Path) -> bool:
    """Put the metadata DB in WAL mode (it stays so: the mode is stored in the file).

    Best effort: a home made before this setting, with Airflow running on it right now, keeps
    its rollback journal until the next start (the busy timeout covers it meanwhile).
    Returns whether the DB is in WAL mode.
    """
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            return mode == "wal"
    except sqlite3.Error:
        return False
