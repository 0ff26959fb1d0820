"""The local Airflow installation: where it lives, how it is configured, when it is migrated.

Airflow reads its configuration once, when ``airflow`` is first imported, so
:func:`configure` must run before that import. Everything is set through
``AIRFLOW__SECTION__KEY`` environment variables, which win over ``airflow.cfg``:

- ``AIRFLOW_HOME`` = ``SANDBOX_AIRFLOW_HOME`` or ``<repo>/.airflow`` (git-ignored);
- the DAGs folder is the repository's ``dags/``; Airflow's example DAGs are not loaded;
- the metadata DB is the SQLite file ``<home>/airflow.db``, created by ``airflow db migrate``
  the first time it is needed (about 5 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sandbox.config import ROOT, SandboxError

DAGS_FOLDER = ROOT / "dags"
DEFAULT_HOME = ROOT / ".airflow"


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
    return db
