"""Build-it exercises, judged by the real tools: 02.3 builds the learner's model with ``dbt build``,
then again with its output emptied (a unit test that still passes guards nothing); 04.1 runs the
learner's DAG task under ``dag.test()`` on a warehouse of runs on random dates (succeeded, failed,
never ran: only the succeeded date may pass); 05.2 reads the pipeline's last build; 07.1 builds
the learner's golden case and evaluates it."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sandbox.config import DBT_PROJECT_DIR, SHIPPED_AS_OF_DATE, SandboxError, warehouse_path
from sandbox.course.notebook import has_table
from sandbox.course.verdicts import Blank, Miss, blank, digest, exercise, scratch_copy, text

LESSON_MODELS = {"fct_users_per_plan"}  # models the lessons create: not the learner's own


def _unit_tests(name: str, model_yml: str) -> list[str]:
    """The unit tests the yml declares for ``name``; a miss when it lacks them or a data test."""
    import yaml

    if name in LESSON_MODELS or list(DBT_PROJECT_DIR.rglob(f"{name}.sql")):
        raise Miss(f"{name} already exists: give your model a new name.")
    try:
        spec = yaml.safe_load(model_yml) or {}
    except yaml.YAMLError as exc:
        raise Miss(f"`my_model_yml` is not valid YAML: {str(exc).splitlines()[0]}") from None
    entry = next((m for m in spec.get("models") or [] if m.get("name") == name), None)
    if entry is None:
        raise Miss(f"the yml has no `models:` entry named {name}.")
    nodes = [entry, *(entry.get("columns") or [])]  # data tests sit on the model or a column
    if not any(node.get("data_tests") or node.get("tests") for node in nodes):
        raise Miss("declare at least one data test (e.g. `data_tests: [not_null]` on a column).")
    units = [
        u["name"] for u in spec.get("unit_tests") or [] if u.get("model") == name and u.get("name")
    ]
    if not units:
        raise Miss(
            f"add a `unit_tests:` entry with `model: {name}`, `given:` rows and `expect:` rows."
        )
    return units


def _gate_message(exc, name: str) -> str:
    mine = [f for f in exc.failures if name in (f.node or "") or (f.model or "").endswith(name)]
    if not mine:
        return f"the build failed before your model: {exc.failures[0].describe()}"
    return "the gate stopped your model: " + "; ".join(f.describe() for f in mine)


def _data_tests_run(result, name: str, units: list[str]) -> int:
    """How many data tests the build ran on ``name``; a miss when the model or a test did not run."""
    ran = {n.name: n for n in result.nodes}
    if name not in ran or ran[name].kind != "model":
        raise Miss(f"dbt did not build {name}: is the file name the model name?")
    data_tests = [n for n in result.nodes if n.kind == "data test" and name in n.name]
    if not data_tests:
        raise Miss(f"no data test ran on {name}: check the yml's indentation.")
    missing = [u for u in units if u not in ran]
    if missing:
        raise Miss(f"unit test {missing[0]} did not run: check its `model:`.")
    return len(data_tests)


def _unit_test_can_fail(sql_path: Path, model_sql: str, name: str, units: list[str]) -> bool:
    """Empty the model's output, build it again: True when a unit test then fails."""
    from sandbox.data.dbt_runner import dbt_args, invoke

    sql_path.write_text(f"select * from (\n{model_sql}\n) as yours where 1 = 0\n")
    outcome = invoke([*dbt_args("build", SHIPPED_AS_OF_DATE), "--select", name])
    results = getattr(outcome.result, "results", None) or []
    return any(r.node.name in units and str(r.status) in ("fail", "error") for r in results)


@exercise("02.3")
def check_dbt_model(name: str | None, model_sql: str | None, model_yml: str | None) -> str:
    """Exercise 02.3: a new mart with data tests and a unit test that can fail, by ``dbt build``."""
    from sandbox.data import GateFailed, build

    if blank(name) or blank(model_sql) or blank(model_yml):
        raise Blank("set `my_model`, `my_model_sql` and `my_model_yml` above.")
    name = str(name).strip().removesuffix(".sql")
    units = _unit_tests(name, str(model_yml))
    with scratch_copy(DBT_PROJECT_DIR, "SANDBOX_DBT_PROJECT_DIR") as project:
        sql_path = project / "models" / "marts" / f"{name}.sql"
        sql_path.write_text(str(model_sql))
        sql_path.with_suffix(".yml").write_text(str(model_yml))
        try:
            result = build(SHIPPED_AS_OF_DATE, unit_tests=True)
        except GateFailed as exc:
            raise Miss(_gate_message(exc, name)) from None
        except Exception as exc:  # dbt's own message (a compile error) is the hint
            raise Miss(
                f"dbt could not build the project: {' '.join(str(exc).split())[:300]}"
            ) from None
        data_tests = _data_tests_run(result, name, units)
        if not _unit_test_can_fail(sql_path, str(model_sql), name, units):
            raise Miss("your unit test still passes when the model returns no "
                       "rows: give it `given:` input rows and the rows you `expect:`.")  # fmt: skip
    return (f"{name} built; {data_tests} data test(s) and {len(units)} unit test(s) passed, "
            "and the unit test failed when the model's logic broke.")  # fmt: skip


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


def _last_build(name: str) -> tuple[str | None, list[str], dict]:
    """The model's node id, its tests and every node's status in the last recorded build."""
    from sandbox.data import target_dir

    manifest = json.loads((target_dir() / "manifest.json").read_text())
    results = json.loads((target_dir() / "run_results.json").read_text())["results"]
    status = {r["unique_id"]: r["status"] for r in results}
    nodes = manifest["nodes"]
    model_id = next(
        (k for k, n in nodes.items() if n["resource_type"] == "model" and n["name"] == name), None
    )
    tests = [k for k, n in nodes.items()
             if n["resource_type"] == "test" and model_id in n["depends_on"]["nodes"]]  # fmt: skip
    return model_id, tests, status


@exercise("05.2")
def check_new_model(project_dir, model_name: str | None) -> str:
    """Exercise 05.2: your own dbt model, with a data test, run by the unchanged DAGs."""
    if blank(model_name):
        raise Blank("set `new_model` to the name of the model you added.")
    name = text(model_name).removesuffix(".sql")
    if name in LESSON_MODELS or list(DBT_PROJECT_DIR.rglob(f"{name}.sql")):
        raise Miss(
            f"{name} is not yours: the lesson (or the shipped project) made it. Add a new one."
        )
    if not list((Path(project_dir) / "models").rglob(f"{name}.sql")):
        raise Miss(f"no file {name}.sql under the copied project's models/.")
    try:
        model_id, tests, status = _last_build(name)
    except (OSError, ValueError, KeyError):
        raise Miss("no dbt build recorded yet: run the pipeline with your project.") from None
    if model_id is None or status.get(model_id) != "success":
        raise Miss(f"the last build did not build {name}: run the pipeline for a date "
                   "with SANDBOX_DBT_PROJECT_DIR set to the copy.")  # fmt: skip
    if not tests:
        raise Miss(
            f"{name} has no data test: add a .yml next to it with at least one (e.g. not_null)."
        )
    if not all(status.get(t) == "pass" for t in tests):
        raise Miss(f"{name}'s tests did not all pass in the last build.")
    return f"{name} was built and {len(tests)} data test(s) passed — and dags/ was never touched."


NEW_CASE_ID = "g900"  # the id the exercise asks for
PREFERRED_DIGEST = "6878fb89b5aec777"  # digest("07.1", the case's preferred type)


@exercise("07.1")
def check_new_golden_case(folder: Path | str) -> str:
    """Exercise 07.1: a starter user, 30 days on the plan, 25 events of 3 types this week."""
    from sandbox.evals.golden import load_golden
    from sandbox.evals.runner import run_eval

    golden = load_golden(folder)
    case = next((c for c in golden.cases if c.user_id == NEW_CASE_ID), None)
    if case is None:  # nothing added yet: a blank, not a miss
        raise Blank(
            f"no {NEW_CASE_ID} in {Path(folder).name}/labels.csv: call add_golden_case(my_golden, "
            f"'{NEW_CASE_ID}', ...) once (each call appends to users.csv, events.csv and labels.csv)",
        )
    if not case.summary.startswith("User has been on the starter plan for 30 days."):
        raise Miss(
            f"dbt wrote {case.summary!r}: check plan_tier and signed_up_days_ago (days before "
            "2026-11-01)"
        )
    if "Performed 25 events of 3 types in the last 7 days." not in case.summary:
        raise Miss(
            f"dbt wrote {case.summary!r}: you need 25 events between 1 and 7 days ago, using "
            "exactly 3 distinct event types (e.g. login, create_report, export_csv)"
        )
    if not case.acceptable or digest("07.1", case.acceptable[0]) != PREFERRED_DIGEST:
        raise Miss(
            f"your label prefers {(list(case.acceptable) or [None])[0]!r}: compare with the "
            "labels of the golden set's other heavy users (Step 1) and ask what a reviewer "
            "would want this user offered; the preferred type goes first"
        )
    if len(case.reason) < 10:
        raise Miss("give the label a one-line reason a reviewer can check")
    result = next(
        r for r in run_eval(llm="mock", golden=golden).results if r.user_id == NEW_CASE_ID
    )
    return (f"{NEW_CASE_ID} is a valid mart row ({len(case.summary)} characters) and the offline "
            f"model answered {result.outcome} ({'agrees' if result.agrees else 'disagrees'}) with "
            "your label")  # fmt: skip
