"""The build-it exercises: the learner's own dbt model, SDK call and DAG task, run for real.

Each check runs the learner's work through the same machinery the pipeline uses — ``dbt
build`` and its gate, the Anthropic SDK against the offline fake, Airflow's ``dag.test()`` —
and judges what that machinery reports. A miss gets a hint, never the answer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sandbox.config import DBT_PROJECT_DIR, SHIPPED_AS_OF_DATE, SandboxError, environment

__all__ = [
    "RecordedExchange",
    "check_dbt_model",
    "check_one_request",
    "check_pipeline_task",
    "recording_client",
]


def _verdict(ok: bool, message: str):
    from sandbox.course import Verdict

    return Verdict(ok, message)


# --- 02 · your own dbt model, with data tests and a unit test ------------------------------


def _yaml_tests(model: dict) -> int:
    """How many data tests a model's yml entry declares (model level and column level)."""
    count = len(model.get("data_tests") or model.get("tests") or [])
    for column in model.get("columns") or []:
        count += len(column.get("data_tests") or column.get("tests") or [])
    return count


def check_dbt_model(name: str | None, model_sql: str | None, model_yml: str | None):
    """Exercise 02.3: a new mart with data tests and a unit test, judged by ``dbt build``.

    The model and its yml go into a copy of the dbt project; the checker builds it with the
    unit tests on (as CI does), then once more with the model's output emptied, to show that
    the unit test can fail (a test that cannot fail guards nothing).
    """
    import yaml

    from sandbox.course import LESSON_MODELS, _blank
    from sandbox.data import GateFailed, build
    from sandbox.data.build import dbt_args, invoke

    if _blank(name) or _blank(model_sql) or _blank(model_yml):
        return _verdict(False, "set `my_model`, `my_model_sql` and `my_model_yml` above.")
    name = str(name).strip().removesuffix(".sql")
    if name in LESSON_MODELS or list(DBT_PROJECT_DIR.rglob(f"{name}.sql")):
        return _verdict(False, f"{name} already exists: give your model a new name.")
    try:
        spec = yaml.safe_load(model_yml) or {}
    except yaml.YAMLError as exc:
        return _verdict(False, f"`my_model_yml` is not valid YAML: {str(exc).splitlines()[0]}")
    entry = next((m for m in spec.get("models") or [] if m.get("name") == name), None)
    if entry is None:
        return _verdict(False, f"the yml has no `models:` entry named {name}.")
    if _yaml_tests(entry) == 0:
        return _verdict(
            False, "declare at least one data test (e.g. `data_tests: [not_null]` on a column)."
        )
    units = [
        u["name"] for u in spec.get("unit_tests") or [] if u.get("model") == name and u.get("name")
    ]
    if not units:
        return _verdict(
            False,
            f"add a `unit_tests:` entry with `model: {name}`, `given:` rows and `expect:` rows.",
        )

    with tempfile.TemporaryDirectory(prefix="my-model-") as scratch:
        project = Path(scratch) / "dbt_project"
        shutil.copytree(
            DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml")
        )
        sql_path = project / "models" / "marts" / f"{name}.sql"
        sql_path.write_text(model_sql)
        (project / "models" / "marts" / f"{name}.yml").write_text(model_yml)
        with environment({"SANDBOX_DBT_PROJECT_DIR": str(project)}):
            try:
                result = build(SHIPPED_AS_OF_DATE, unit_tests=True)
            except GateFailed as exc:
                mine = [
                    f
                    for f in exc.failures
                    if name in (f.node or "") or f.model and f.model.endswith(name)
                ]
                if not mine:
                    return _verdict(
                        False, f"the build failed before your model: {exc.failures[0].describe()}"
                    )
                return _verdict(
                    False, "the gate stopped your model: " + "; ".join(f.describe() for f in mine)
                )
            except Exception as exc:  # dbt's own message (a compile error) is the hint
                return _verdict(
                    False, f"dbt could not build the project: {' '.join(str(exc).split())[:300]}"
                )
            ran = {n.name: n for n in result.nodes}
            if name not in ran or ran[name].kind != "model":
                return _verdict(
                    False, f"dbt did not build {name}: is the file name the model name?"
                )
            data_tests = [n for n in result.nodes if n.kind == "data test" and name in n.name]
            if not data_tests:
                return _verdict(False, f"no data test ran on {name}: check the yml's indentation.")
            missing = [u for u in units if u not in ran]
            if missing:
                return _verdict(False, f"unit test {missing[0]} did not run: check its `model:`.")
            # The unit test must be able to fail: empty the model's output and build it again.
            sql_path.write_text(f"select * from (\n{model_sql}\n) as yours where 1 = 0\n")
            outcome = invoke([*dbt_args("build", SHIPPED_AS_OF_DATE), "--select", name])
            results = getattr(outcome.result, "results", None) or []
            caught = [
                r for r in results if r.node.name in units and str(r.status) in ("fail", "error")
            ]
            if not caught:
                return _verdict(
                    False,
                    "your unit test still passes when the model returns no rows: give it "
                    "`given:` input rows and the rows you `expect:` from them.",
                )
    return _verdict(
        True,
        f"{name} built; {len(data_tests)} data test(s) and {len(units)} unit test(s) passed, "
        "and the unit test failed when the model's logic broke.",
    )


# --- 03 · one request through the SDK, and its validation ----------------------------------


@dataclass
class RecordedExchange:
    """One HTTP request the SDK sent to the fake, and the response it got back."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    response: dict[str, Any] = field(default_factory=dict)


def recording_client(*, faults: str | None = None, max_retries: int = 0):
    """An ``anthropic.Anthropic`` client on the offline fake that records every exchange.

    Returns ``(client, exchanges)``: each HTTP request the SDK builds and the fake's response,
    as the bytes went over the (in-process) wire. ``faults`` is a ``SANDBOX_MOCK_FAULTS`` spec.
    """
    import anthropic
    import httpx2

    from sandbox.decision.fake import OFFLINE_BASE_URL, FakeMessagesAPI, Faults

    fake = FakeMessagesAPI(faults=Faults.parse(faults))
    exchanges: list[RecordedExchange] = []

    def handle(request):
        response = fake.handle(request)
        try:
            answer = json.loads(response.content or b"{}")
        except ValueError:
            answer = {"raw": response.content.decode(errors="replace")}
        headers = {
            k: ("<redacted>" if k.lower() in ("x-api-key", "authorization") else v)
            for k, v in request.headers.items()
        }
        exchanges.append(
            RecordedExchange(
                request.method,
                str(request.url),
                headers,
                json.loads(request.content or b"{}"),
                response.status_code,
                answer,
            )
        )
        return response

    client = anthropic.Anthropic(
        api_key="mock-key-offline",
        base_url=OFFLINE_BASE_URL,
        http_client=anthropic.DefaultHttpxClient(transport=httpx2.MockTransport(handle)),
        max_retries=max_retries,
    )
    return client, exchanges


_CHECK_SUMMARIES = (
    "User has been on the free plan for 37 days. Last active today. Performed 24 events of 2 types in the last 7 days.",
    "User has been on the enterprise plan for 912 days. Last active 3 days ago. Performed 5 events of 3 types in the last 7 days.",
    "User has been on the starter plan for 5 days. No activity recorded since signing up.",
)


def check_one_request(recommend_one) -> Any:
    """Exercise 03.3: your own ``messages.create`` call with ``output_config``, and its validation.

    ``recommend_one(client, summary)`` must send one request with a JSON-schema
    ``output_config`` and return the validated answer; given an answer the schema cannot stop
    (a confidence of 85 instead of 0.85) it must raise instead of returning it.
    """
    from sandbox.decision.fake import recommend
    from sandbox.decision.prompt import OUTPUT_SCHEMA

    if recommend_one is None or not callable(recommend_one):
        return _verdict(False, "define `recommend_one(client, summary)` above.")
    for summary in _CHECK_SUMMARIES:
        client, sent = recording_client()
        try:
            answer = recommend_one(client, summary)
        except Exception as exc:
            why = (
                sent[-1].response.get("error", {}).get("message")
                if sent and sent[-1].status >= 400
                else None
            )
            return _verdict(False, f"your function raised {type(exc).__name__}: {why or exc}")
        posts = [x for x in sent if x.url.endswith("/v1/messages")]
        if len(posts) != 1:
            return _verdict(
                False, f"{len(posts)} requests to /v1/messages for one summary: send exactly one."
            )
        body = posts[0].body
        fmt = (body.get("output_config") or {}).get("format") or {}
        if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            return _verdict(
                False, 'pass output_config={"format": {"type": "json_schema", "schema": ...}}.'
            )
        if set(fmt["schema"].get("properties", {})) != set(OUTPUT_SCHEMA["properties"]):
            return _verdict(
                False, "the schema's properties are not the answer's fields: use OUTPUT_SCHEMA."
            )
        if summary not in json.dumps(body.get("messages", [])):
            return _verdict(False, "the user message must carry the summary you were given.")
        if not body.get("system"):
            return _verdict(False, "send the system prompt too (`system=`): it says how to answer.")
        kind = getattr(answer, "recommendation_type", None) or (
            answer.get("recommendation_type") if isinstance(answer, dict) else None
        )
        if kind != recommend(summary).recommendation_type:
            return _verdict(
                False, "return the validated answer (e.g. what parse_answer(message) gives)."
            )
    client, sent = recording_client(faults="out_of_range=1")
    try:
        bad = recommend_one(client, _CHECK_SUMMARIES[0])
    except Exception:  # any refusal to return it is right; the engine raises InvalidAnswer
        bad = None
    if bad is not None:
        return _verdict(
            False,
            "an answer with confidence_score 85 came back as a result: validate it (pydantic, or "
            "parse_answer) and raise instead of returning it.",
        )
    return _verdict(
        True, "one structured request per row, and an out-of-range answer never gets through."
    )


# --- 04 · a task of your own, run by Airflow ----------------------------------------------

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


def _exercise_home() -> Path:
    from sandbox.config import warehouse_path

    return warehouse_path().parent / "exercise_airflow"


def check_pipeline_task(dag_file) -> Any:
    """Exercise 04.1: a DAG ``pipeline_health`` whose task ``check_last_run`` fails a bad day.

    Airflow runs your file with ``dag.test()`` (its own home, this notebook's warehouse) for a
    date ``ops.pipeline_runs`` records as a success — the task must succeed — and for a date
    with no successful run — the task must fail.
    """
    from sandbox.control.airflow_env import airflow_environ, migrate_home
    from sandbox.course import _has_table, _rows

    path = Path(dag_file) if dag_file else None
    code = (
        [x for x in path.read_text().splitlines() if x.strip() and not x.lstrip().startswith("#")]
        if path and path.is_file()
        else []
    )
    if not code:
        return _verdict(False, "write your DAG into `my_dag` with the %%writefile cell above.")
    if not _has_table("ops.pipeline_runs"):
        return _verdict(False, "ops.pipeline_runs does not exist yet: run Step 3 first.")
    good = _rows("select max(execution_date) from ops.pipeline_runs where status = 'success'")[0][0]
    if good is None:
        return _verdict(False, "no successful run is recorded yet: run Step 3 first.")
    bad = str(good + timedelta(days=1))
    if _rows(
        "select count(*) from ops.pipeline_runs where execution_date = ? and status = 'success'",
        [bad],
    )[0][0]:
        return _verdict(
            False,
            f"{bad} has a successful run here, so nothing can fail it: use a fresh notebook run.",
        )
    home = _exercise_home()
    home.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="dags-", dir=home))
    shutil.copy(path, folder / path.name)
    env = {**os.environ, **airflow_environ(home), "AIRFLOW__CORE__DAGS_FOLDER": str(folder)}
    env.pop("SANDBOX_MOCK_FAULTS", None)
    log = home / "check.log"
    try:
        migrate_home(home, log=home / "db-migrate.log")
    except SandboxError as exc:
        return _verdict(False, f"Airflow could not set up its home: {exc}")
    with log.open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-c", _RUN_DAG, str(folder), EXERCISE_DAG_ID, str(good), bad],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        out.write(proc.stdout + proc.stderr)
    shutil.rmtree(folder, ignore_errors=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return _verdict(False, f"Airflow could not run your file; its output is in {log}.")
    result = json.loads(line[len("RESULT ") :])
    if "import_errors" in result:
        return _verdict(
            False,
            "Airflow could not import your DAG: " + "; ".join(result["import_errors"].values()),
        )
    if "dags" in result:
        return _verdict(
            False,
            f"no DAG named {EXERCISE_DAG_ID} in your file (found: {', '.join(result['dags']) or 'none'}).",
        )
    if EXERCISE_TASK_ID not in result["tasks"]:
        return _verdict(
            False, f"the DAG has no task {EXERCISE_TASK_ID} (it has {', '.join(result['tasks'])})."
        )
    on_good = result["states"][str(good)].get(EXERCISE_TASK_ID)
    on_bad = result["states"][bad].get(EXERCISE_TASK_ID)
    if on_good != "success":
        return _verdict(
            False,
            f"on {good}, which succeeded, your task ended {on_good}: it should pass (log: {log}).",
        )
    if on_bad is None:
        return _verdict(
            False, f"your task did not run for {bad}: is the DAG's start_date after it?"
        )
    if on_bad != "failed":
        return _verdict(
            False, f"on {bad}, which never ran, your task ended {on_bad}: it should fail (raise)."
        )
    return _verdict(
        True, f"Airflow ran {EXERCISE_DAG_ID}: {EXERCISE_TASK_ID} passed {good} and failed {bad}."
    )
