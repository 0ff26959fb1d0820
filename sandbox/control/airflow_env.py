"""The local Airflow installation: where it lives, how it is configured, when it is migrated.

Airflow reads its configuration once, at its first import, so :func:`configure` sets the
``AIRFLOW__*`` variables (home ``SANDBOX_AIRFLOW_HOME``, ``dags/``, SQLite in WAL) before that.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from sandbox.config import (
    ROOT,
    SandboxError,
    airflow_home,
    cache_dir,
    copy_into_place,
    part_file,
    sweep_parts,
)

DAGS_FOLDER = ROOT / "dags"
# Airflow passes this dict ([database] sql_alchemy_connect_args and _async) to sqlite3 and
# aiosqlite in each of its processes. 20 s, four times SQLite's default, is well under the REST
# client's 60 s: a request that cannot get the lock in time ends as a 500 "Database error" that
# ui.api retries, not as a client-side timeout (with 60 s the api-server once hung for minutes).
SQLITE_CONNECT_ARGS = {"timeout": 20}


def log_dir() -> Path:
    """Where task logs and the captured output of ``sandbox run`` go."""
    return airflow_home() / "logs"


def attempt_log(dag_id: str, run_id: str, task_id: str, attempt: int) -> Path:
    """Where Airflow's default ``log_filename_template`` puts one attempt of a task."""
    parts = (f"dag_id={dag_id}", f"run_id={run_id}", f"task_id={task_id}")
    return log_dir().joinpath(*parts, f"attempt={attempt}.log")


def airflow_environ(home: Path) -> dict[str, str]:
    """The environment variables that point Airflow at ``home``, its DB and the DAGs."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "sandbox.control.airflow_env.SQLITE_CONNECT_ARGS",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "sandbox.control.airflow_env.SQLITE_CONNECT_ARGS",
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


def waits(poke_s: int, timeout_s: int, retry_s: int) -> dict[str, str]:
    """The DAGs' sensor, batch-poke and retry waits (``SANDBOX_*``), except those the user set."""
    wanted = {"SANDBOX_SENSOR_POKE_S": poke_s, "SANDBOX_BATCH_POKE_S": poke_s,
              "SANDBOX_SENSOR_TIMEOUT_S": timeout_s, "SANDBOX_RETRY_DELAY_S": retry_s}  # fmt: skip
    return {k: str(v) for k, v in wanted.items() if not os.environ.get(k)}


def configure() -> Path:
    """Point this process (and its children) at the sandbox's Airflow; return the home."""
    home = airflow_home()
    if "airflow.configuration" in sys.modules:
        from airflow.configuration import AIRFLOW_HOME

        if Path(AIRFLOW_HOME).resolve() != home:
            raise SandboxError(
                f"Airflow was already imported in this process with AIRFLOW_HOME={AIRFLOW_HOME}; "
                f"the sandbox uses {home}: restart the kernel (or process) and call the sandbox "
                "before importing airflow yourself"
            )
    (home / "logs").mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_environ(home))
    return home


def migrate_home(home: Path) -> Path:
    """Give ``home`` a migrated metadata DB in WAL mode, when it has none: a copy of the cached
    :func:`template_db`, else ``airflow db migrate`` (its output in ``logs/db-migrate.log``)."""
    db, log = home / "airflow.db", home / "logs" / "db-migrate.log"
    if not db.exists() or db.stat().st_size == 0:
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **airflow_environ(home)}
        template = template_db(env)
        if template is not None and _copy_db(template, db):
            log.write_text(f"copied from {template} (made by `airflow db migrate`)\n")
        else:
            with log.open("w") as out:
                proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"],
                                      env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
            if proc.returncode != 0:
                db.unlink(missing_ok=True)
                raise SandboxError(
                    f"`airflow db migrate` failed (exit {proc.returncode}); its output is in "
                    f"{log}. Delete {home} and try again."
                )
            if template is not None:
                _keep_template(db, template)
    # WAL is stored in the file. Best effort: a home with Airflow running on it keeps its
    # rollback journal until the next start (the busy timeout covers it).
    with contextlib.suppress(sqlite3.Error):
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    return db


def template_db(env: dict[str, str]) -> Path | None:
    """The cached template of a new home's metadata DB, per Airflow version and per set of
    ``AIRFLOW__*`` settings not naming the home (a pool size changes the DB); None: no cache."""
    from importlib.metadata import version

    airflow_version = version("apache-airflow-core")
    per_home = set(airflow_environ(Path("/")))
    settings = sorted(
        (k, v) for k, v in env.items() if k.startswith("AIRFLOW__") and k not in per_home
    )
    digest = hashlib.sha256(json.dumps([airflow_version, settings]).encode()).hexdigest()[:12]
    folder = cache_dir("airflow")
    return None if folder is None else folder / f"airflow-{airflow_version}-{digest}.db"


def _copy_db(template: Path, db: Path) -> bool:
    """Copy a template that is a whole migrated DB into place (atomically); False otherwise."""
    try:
        with contextlib.closing(sqlite3.connect(f"{template.as_uri()}?mode=ro", uri=True)) as conn:
            whole = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            if not (whole and conn.execute("select version_num from alembic_version").fetchone()):
                return False
        copy_into_place(template, db)
        return True
    except (OSError, sqlite3.Error):
        return False


def _keep_template(db: Path, template: Path) -> None:
    """Save a consistent copy of a freshly migrated DB as the template (best effort; a
    concurrent migration may write the same template: the last rename wins, both are whole)."""
    part = part_file(template)
    try:
        with (
            contextlib.closing(sqlite3.connect(db, timeout=5)) as src,
            contextlib.closing(sqlite3.connect(part)) as dst,
        ):
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        os.replace(part, template)
    except (OSError, sqlite3.Error):
        part.unlink(missing_ok=True)
    sweep_parts(template.parent)
