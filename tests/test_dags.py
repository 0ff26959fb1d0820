"""The DAG files: they import cleanly, and their structure is the article's, on Airflow 3."""

from __future__ import annotations

import ast
import importlib.util
import warnings
from datetime import timedelta
from pathlib import Path

import pytest

from tests.control_fixtures import DAGS, airflow_home_session_fixture  # noqa: F401

DAG_FILES = sorted(DAGS.glob("*.py"))
AI_TASKS = ["wait_for_dbt_completion", "prepare_features", "run_llm_inference", "write_results"]


@pytest.fixture
def dagbag(airflow_home_session, monkeypatch):
    """The dags/ folder parsed by Airflow's own DagBag, with production settings."""
    for name in ("SANDBOX_SENSOR_TIMEOUT_S", "SANDBOX_SENSOR_POKE_S", "SANDBOX_RETRY_DELAY_S"):
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
    for upstream, downstream in zip(AI_TASKS, AI_TASKS[1:], strict=False):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    assert dag.schedule == "0 2 * * *"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert {"ai", "recommendations"} <= set(dag.tags)
    assert dag.doc_md and "ExternalTaskSensor" in dag.doc_md
    assert {"model", "batch_size", "llm"} <= set(dag.params.keys())
    for task in dag.tasks:
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
    write = dag.get_task("write_results")
    assert [cb.__name__ for cb in write.on_success_callback] == ["record_success"]
    for task in dag.tasks:
        assert [cb.__name__ for cb in task.on_failure_callback] == ["record_failure"]


def test_dbt_production_has_the_gate_task_on_the_same_schedule(dagbag) -> None:
    dag = dagbag.dags["dbt_production"]
    assert dag.task_ids == ["dbt_run"]
    assert dag.schedule == dagbag.dags["ai_recommendation_pipeline"].schedule
    assert dag.start_date == dagbag.dags["ai_recommendation_pipeline"].start_date
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
    assert not [name for name in top_level if name and name.split(".")[0] == "sandbox"]
    assert not [n for n in top_level if n and n.startswith("airflow.operators")]  # Airflow 2
    assert ast.get_docstring(tree), "the module docstring is the DAG's doc_md"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_read_in_a_screen(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 120


def test_importing_sandbox_control_does_not_import_airflow() -> None:
    spec = importlib.util.find_spec("sandbox.control")
    assert spec is not None
    import subprocess
    import sys

    code = "import sys, sandbox.control; print('airflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
