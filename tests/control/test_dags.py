"""The DAG files: they import cleanly, and their structure is the article's, on Airflow 3."""

from __future__ import annotations

import ast
import importlib.util
import warnings
from datetime import timedelta
from pathlib import Path

import pytest

from tests.control.conftest import DAGS, airflow_home_session_fixture  # noqa: F401

DAG_FILES = sorted(DAGS.glob("*.py"))
AI_TASKS = [
    "wait_for_dbt_completion",
    "prepare_features",
    "run_llm_inference",
    "wait_for_batch",
    "write_results",
    "check_drift",
]


@pytest.fixture
def dagbag(airflow_home_session, monkeypatch):
    """The dags/ folder parsed by Airflow's own DagBag, with production settings."""
    for name in (
        "SANDBOX_SENSOR_TIMEOUT_S",
        "SANDBOX_SENSOR_POKE_S",
        "SANDBOX_RETRY_DELAY_S",
        "SANDBOX_BATCH_POKE_S",
        "SANDBOX_BATCH_TIMEOUT_S",
    ):
        monkeypatch.delenv(name, raising=False)
    from airflow.dag_processing.dagbag import DagBag  # configures Airflow's logging first

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(DAGS))
    bag.caught_warnings = caught
    return bag


def test_dagbag_imports_both_dags_without_errors_or_deprecations(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"dbt_production", "ai_recommendation_pipeline"}
    # Airflow's deprecations (e.g. importing from airflow.exceptions) are attributed to the
    # line of ours that triggers them; some are UserWarnings, so no category filter.
    ours = [
        f"{Path(w.filename).name}:{w.lineno}: {w.category.__name__}: {w.message}"
        for w in dagbag.caught_warnings
        if Path(w.filename).parent == DAGS or "sandbox" in Path(w.filename).parts
    ]
    assert ours == []


def test_ai_pipeline_order_schedule_and_retries(dagbag) -> None:
    dag = dagbag.dags["ai_recommendation_pipeline"]
    assert [t.task_id for t in dag.topological_sort()] == AI_TASKS
    for upstream, downstream in zip(AI_TASKS[:3], AI_TASKS[1:4], strict=True):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    # the drift watch runs beside write_results: a partial run is judged too, and a drift
    # verdict never keeps the answers from being published
    assert dag.get_task("wait_for_batch").downstream_task_ids == {"write_results", "check_drift"}
    assert dag.get_task("write_results").downstream_task_ids == set()
    assert dag.get_task("check_drift").downstream_task_ids == set()
    assert dag.timetable.expression == "0 2 * * *" and str(dag.timetable.timezone) == "UTC"
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert {"ai", "recommendations"} <= set(dag.tags)
    assert dag.doc_md and "ExternalTaskSensor" in dag.doc_md
    assert {"model", "batch_size", "llm", "max_cost_usd", "mode"} <= set(dag.params.keys())
    assert dag.params["mode"] is None and dag.params["max_cost_usd"] is None  # env decides
    for task in dag.tasks:
        if task.task_id == "wait_for_dbt_completion":
            # a failed dbt run fails each poke at once: the sensor's two retries come one poke
            # apart (they cover a scheduler that fails a rescheduled sensor under load)
            assert (task.retries, task.retry_delay) == (2, timedelta(seconds=60))
            continue
        assert task.retries == 3
        assert task.retry_delay == timedelta(minutes=5)


def test_sensor_waits_for_dbt_run_on_the_same_logical_date(dagbag) -> None:
    from airflow.providers.standard.sensors.external_task import ExternalTaskSensor

    sensor = dagbag.dags["ai_recommendation_pipeline"].get_task("wait_for_dbt_completion")
    assert isinstance(sensor, ExternalTaskSensor)
    assert (sensor.external_dag_id, sensor.external_task_id) == ("dbt_production", "dbt_run")
    assert sensor.execution_delta is None and sensor.execution_date_fn is None
    assert sensor.mode == "reschedule"
    assert (sensor.timeout, sensor.poke_interval) == (3600, 60)
    assert sensor.allowed_states == ["success"]
    assert sensor.failed_states == ["failed"]  # fails fast once dbt_run failed for good


def test_sensor_timeout_and_poke_come_from_the_environment(
    airflow_home_session, monkeypatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("SANDBOX_SENSOR_TIMEOUT_S", "7")
    monkeypatch.setenv("SANDBOX_SENSOR_POKE_S", "2")
    sensor = (
        DagBag(dag_folder=str(DAGS))
        .dags["ai_recommendation_pipeline"]
        .get_task("wait_for_dbt_completion")
    )
    assert (sensor.timeout, sensor.poke_interval) == (7, 2)


def test_run_summary_callbacks(dagbag) -> None:
    dag = dagbag.dags["ai_recommendation_pipeline"]
    # write_results writes the success row itself (a failure to write fails the task)
    assert not dag.get_task("write_results").on_success_callback
    for task in dag.tasks:
        assert [cb.__name__ for cb in task.on_failure_callback] == ["record_failure"]


def test_dbt_production_has_the_gate_task_on_the_same_schedule(dagbag) -> None:
    dag = dagbag.dags["dbt_production"]
    assert dag.task_ids == ["dbt_run"]
    assert dag.timetable == dagbag.dags["ai_recommendation_pipeline"].timetable
    # no start date: switching a DAG on runs no past interval (whose data cannot be fresh)
    assert dag.start_date is None and dagbag.dags["ai_recommendation_pipeline"].start_date is None
    assert dag.doc_md and "gate" in dag.doc_md


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_import_sandbox_only_inside_tasks(path: Path) -> None:
    tree = ast.parse(path.read_text())
    top_level = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [None])
    ]
    # only the names (ids, choices) and the settings, both light modules of the standard
    # library alone; the work is imported inside tasks
    sandbox = {name for name in top_level if name and name.split(".")[0] == "sandbox"}
    assert sandbox <= {"sandbox.config", "sandbox.control.names"}
    assert not [n for n in top_level if n and n.startswith("airflow.operators")]  # Airflow 2
    assert ast.get_docstring(tree), "the module docstring is the DAG's doc_md"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_read_in_a_screen(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 140


def test_importing_sandbox_control_does_not_import_airflow() -> None:
    spec = importlib.util.find_spec("sandbox.control")
    assert spec is not None
    import subprocess
    import sys

    code = "import sys, sandbox.control; print('airflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_batch_wait_holds_no_worker_slot(dagbag) -> None:
    from airflow.providers.standard.sensors.python import PythonSensor

    sensor = dagbag.dags["ai_recommendation_pipeline"].get_task("wait_for_batch")
    assert isinstance(sensor, PythonSensor) and sensor.mode == "reschedule"
    assert (sensor.poke_interval, sensor.timeout) == (300, 25 * 3600)


TIMETABLE_PROBE = """
import json
from datetime import UTC, datetime
from sandbox.control import airflow_env
airflow_env.configure()
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DAG
from airflow.serialization.encoders import coerce_to_core_timetable
from airflow.timetables.base import TimeRestriction

def first_run(timetable):
    info = coerce_to_core_timetable(timetable).next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(
            earliest=datetime(2026, 11, 1, 1, tzinfo=UTC), latest=None, catchup=True
        ),
    )
    return [info.logical_date.date().isoformat(), info.run_after.isoformat()]

bag = DagBag(dag_folder=str(airflow_env.DAGS_FOLDER))
runs = {d: first_run(bag.dags[d].timetable) for d in ("dbt_production", "ai_recommendation_pipeline")}
plain = DAG("plain", schedule="0 2 * * *", start_date=datetime(2024, 1, 1, tzinfo=UTC))
runs["a plain cron string"] = first_run(plain.timetable)
print(json.dumps(runs))
"""


@pytest.mark.parametrize("data_intervals", ["True", "False"])
def test_ds_is_the_day_of_the_run_whatever_create_cron_data_intervals_says(
    data_intervals: str, tmp_path: Path
) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "SANDBOX_AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS": data_intervals,
    }
    out = subprocess.run(
        [sys.executable, "-c", TIMETABLE_PROBE], env=env, capture_output=True, text=True,
        check=True, timeout=300,
    )  # fmt: skip
    runs = json.loads(out.stdout.strip().splitlines()[-1])
    # the run that starts at 02:00 UTC on 2026-11-01 has ds = 2026-11-01, the as-of date
    for dag_id in ("dbt_production", "ai_recommendation_pipeline"):
        assert runs[dag_id] == ["2026-11-01", "2026-11-01T02:00:00+00:00"]
    # what the pinned timetable protects against: a bare cron string follows the setting
    plain = runs["a plain cron string"]
    if data_intervals == "True":
        assert plain == ["2026-11-01", "2026-11-02T02:00:00+00:00"]  # ds = the day before
    else:
        assert plain == ["2026-11-01", "2026-11-01T02:00:00+00:00"]


class _SensorTI:
    def __init__(self, states: dict) -> None:
        self.states = states
        self.asked: list = []

    def get_ti_count(self, *, states, **kwargs) -> int:
        self.asked.append(kwargs)
        return sum(self.states.get(s, 0) for s in states)


@pytest.mark.parametrize(
    ("states", "outcome"),
    [({}, False), ({"success": 1}, True), ({"running": 1}, False), ({"failed": 1}, "fails")],
)
def test_the_gate_sensor_passes_on_success_and_fails_fast_on_failure(
    dagbag, states, outcome
) -> None:
    from datetime import UTC, datetime

    sensor = dagbag.dags["ai_recommendation_pipeline"].get_task("wait_for_dbt_completion")
    ti = _SensorTI(states)
    when = datetime(2026, 11, 1, 2, tzinfo=UTC)
    if outcome == "fails":
        with pytest.raises(Exception, match="failed"):
            sensor.poke({"ti": ti, "logical_date": when})
    else:
        assert sensor.poke({"ti": ti, "logical_date": when}) is outcome
    assert ti.asked[0] == {
        "dag_id": "dbt_production", "task_ids": ["dbt_run"], "logical_dates": [when]
    }  # fmt: skip


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_a_wrong_dag_timing_names_the_variable_and_the_fix(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox.config import SandboxError

    monkeypatch.setenv("SANDBOX_RETRY_DELAY_S", "five minutes")
    spec = importlib.util.spec_from_file_location(f"bad_timing_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(SandboxError, match=r"SANDBOX_RETRY_DELAY_S='five minutes' .* 0 or more"):
        spec.loader.exec_module(module)
