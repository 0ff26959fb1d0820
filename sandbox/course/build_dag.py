"""Exercise 04.1, build it: a DAG task of your own, run by Airflow on dates it never saw.

The check runs the learner's file with ``dag.test()`` on a warehouse copy holding runs on
random dates (succeeded, failed, never ran): only the succeeded date may pass.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from sandbox.config import SandboxError
from sandbox.course.recall import has_table
from sandbox.course.verdicts import Blank, Miss, exercise, scratch_copy

EXERCISE_DAG_ID = "pipeline_health"
EXERCISE_TASK_ID = "check_last_run"

_RUN_DAG = r"""
import json, sys
from datetime import datetime, timezone
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
if bag.import_errors:
    print("RESULT " + json.dumps({"import_errors": {k: v.splitlines()[-1] for k, v in bag.import_errors.items()}}))
    raise SystemExit(0)
dag = bag.dags.get(sys.argv[2])
if dag is None:
    print("RESULT " + json.dumps({"dags": sorted(bag.dag_ids)}))
    raise SystemExit(0)
states = {}
for day in sys.argv[3:]:
    when = datetime.fromisoformat(day).replace(hour=2, tzinfo=timezone.utc)
    run = dag.test(logical_date=when)
    states[day] = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("RESULT " + json.dumps({"tasks": sorted(dag.task_ids), "states": states}))
"""


def _hidden_warehouse(folder: Path, dates: dict[str, str]) -> Path:
    """A new warehouse whose ops.pipeline_runs (this notebook's columns) holds only ``dates``."""
    import duckdb

    from sandbox.config import warehouse_path

    copy = folder / "hidden.duckdb"
    with duckdb.connect(str(copy)) as con:
        con.execute(f"attach '{warehouse_path()}' as notebook (read_only)")
        con.execute("create schema ops")
        con.execute("create table ops.pipeline_runs as "
                    "select * from notebook.ops.pipeline_runs limit 0")  # fmt: skip
        con.execute("detach notebook")
        for n, status in enumerate(("success", "failed")):
            con.execute(
                "insert into ops.pipeline_runs (execution_date, dag_run_id, status, rows_written,"
                " failures, llm_requests, cost_usd, recorded_at) values (?, ?, ?, 0, 0, 0, 0.0,"
                " now())", [dates[status], f"hidden{n}", status],
            )  # fmt: skip
    return copy


def _run_in_airflow(dag_file: Path, dates: dict[str, str], home: Path) -> tuple[dict, Path]:
    """Run the learner's file under ``dag.test()`` in a subprocess; its RESULT line, its log."""
    from sandbox.control.airflow_env import airflow_environ, migrate_home

    migrate_home(home, log=home / "db-migrate.log")
    with scratch_copy(dag_file) as copy:  # its folder is the DAG folder
        folder = copy.parent
        env = {**os.environ, **airflow_environ(home), "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
               "SANDBOX_WAREHOUSE": str(_hidden_warehouse(folder, dates))}  # fmt: skip
        env.pop("SANDBOX_MOCK_FAULTS", None)
        proc = subprocess.run(
            [sys.executable, "-c", _RUN_DAG, str(folder), EXERCISE_DAG_ID, *dates.values()],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    log = home / "check.log"
    log.write_text(proc.stdout + proc.stderr)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    return (json.loads(line[len("RESULT ") :]) if line else {}), log


def _judge(result: dict, dates: dict[str, str]) -> str:
    if "import_errors" in result:
        raise Miss("Airflow could not import your DAG: "
                   + "; ".join(result["import_errors"].values()))  # fmt: skip
    if "dags" in result:
        found = ", ".join(result["dags"]) or "none"
        raise Miss(f"no DAG named {EXERCISE_DAG_ID} in your file (found: {found}).")
    if EXERCISE_TASK_ID not in result["tasks"]:
        raise Miss(f"the DAG has no task {EXERCISE_TASK_ID} "
                   f"(it has {', '.join(result['tasks'])}).")  # fmt: skip
    states = {k: result["states"][d].get(EXERCISE_TASK_ID) for k, d in dates.items()}
    if states["success"] != "success":
        raise Miss(f"on {dates['success']}, which succeeded, your task ended "
                   f"{states['success']}: it should pass.")  # fmt: skip
    for kind, said in (("failed", "failed"), ("none", "never ran")):
        if states[kind] is None:
            raise Miss(f"your task did not run for {dates[kind]}: is the DAG's "
                       "start_date after it?")  # fmt: skip
        if states[kind] != "failed":
            raise Miss(f"on {dates[kind]}, whose run {said}, your task ended "
                       f"{states[kind]}: it should fail (raise).")  # fmt: skip
    return (f"Airflow ran {EXERCISE_DAG_ID} on three dates it never saw: "
            f"{EXERCISE_TASK_ID} passed only the one with a successful run.")  # fmt: skip


@exercise("04.1")
def check_pipeline_task(dag_file) -> str:
    """Exercise 04.1: a DAG ``pipeline_health`` whose ``check_last_run`` fails a bad day."""
    from sandbox.config import warehouse_path

    path = Path(dag_file or ".")
    lines = path.read_text().splitlines() if path.is_file() else []
    if not any(x.strip() and not x.lstrip().startswith("#") for x in lines):
        raise Blank("write your DAG into `my_dag` with the %%writefile cell above.")
    if not has_table("ops.pipeline_runs"):
        raise Blank("ops.pipeline_runs does not exist yet: run Step 3 first.")
    days = [f"2026-10-{d:02d}" for d in random.sample(range(2, 29), 3)]  # not the lesson's days
    dates = dict(zip(("success", "failed", "none"), days, strict=True))
    home = warehouse_path().parent / "exercise_airflow"
    home.mkdir(parents=True, exist_ok=True)
    try:
        result, log = _run_in_airflow(path, dates, home)
    except SandboxError as exc:
        raise Miss(f"Airflow could not set up its home: {exc}") from None
    if not result:
        raise Miss(f"Airflow could not run your file; its output is in {log.name} "
                   "in this notebook's exercise_airflow folder.")  # fmt: skip
    return _judge(result, dates)
