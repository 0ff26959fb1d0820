"""Exercise 04.1, build it: a DAG task of your own, run by ``dag.test()`` on a warehouse holding
runs on random dates (succeeded, failed, never ran): only the succeeded date may pass."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sandbox.config import SandboxError, warehouse_path
from sandbox.course.recall import has_table
from sandbox.course.verdicts import Blank, Miss, exercise

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


def _run_in_airflow(dag_file: Path, dates: dict[str, str], home: Path) -> dict:
    """Run the learner's file under ``dag.test()`` on a hidden warehouse (log: check.log)."""
    import duckdb

    from sandbox.control.airflow_env import airflow_environ, migrate_home
    from sandbox.control.runs import ensure_table

    migrate_home(home)
    with tempfile.TemporaryDirectory() as folder:  # the DAG folder: the learner's file alone
        shutil.copy(dag_file, folder)
        warehouse = Path(folder) / "hidden.duckdb"
        with duckdb.connect(str(warehouse)) as con:  # one succeeded and one failed run
            ensure_table(con)
            con.executemany(
                "insert into ops.pipeline_runs (execution_date, dag_run_id, status, rows_written, "
                "failures, llm_requests, cost_usd, recorded_at) "
                "values (?, ?, ?, 0, 0, 0, 0.0, now())",
                [(dates[status], f"hidden-{status}", status) for status in ("success", "failed")],
            )
        env = {**os.environ, **airflow_environ(home), "AIRFLOW__CORE__DAGS_FOLDER": folder,
               "SANDBOX_WAREHOUSE": str(warehouse)}  # fmt: skip
        env.pop("SANDBOX_MOCK_FAULTS", None)
        proc = subprocess.run(
            [sys.executable, "-c", _RUN_DAG, folder, EXERCISE_DAG_ID, *dates.values()],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    (home / "check.log").write_text(proc.stdout + proc.stderr)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    return json.loads(line[len("RESULT ") :]) if line else {}


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
    path = Path(dag_file or ".")
    lines = path.read_text().splitlines() if path.is_file() else []
    if not any(x.strip() and not x.lstrip().startswith("#") for x in lines):
        raise Blank("write your DAG into `my_dag` with the %%writefile cell above.")
    if not has_table("ops.pipeline_runs"):
        raise Blank("ops.pipeline_runs does not exist yet: run Step 3 first.")
    days = [f"2026-10-{d:02d}" for d in random.sample(range(2, 29), 3)]  # not the lesson's days
    dates = dict(zip(("success", "failed", "none"), days, strict=True))
    try:
        result = _run_in_airflow(path, dates, warehouse_path().parent / "exercise_airflow")
    except SandboxError as exc:
        raise Miss(f"Airflow could not set up its home: {exc}") from None
    if not result:
        raise Miss("Airflow could not run your file; its output is in check.log in this "
                   "notebook's exercise_airflow folder.")  # fmt: skip
    return _judge(result, dates)
