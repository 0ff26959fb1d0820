"""The control plane: Airflow DAGs decide what runs, when, and in what order.

The only package that knows both other planes (they talk through tables); the DAG files in
``dags/`` call :mod:`sandbox.control.tasks`. Airflow is imported only when a pipeline runs.
"""

from sandbox.control.airflow_env import configure
from sandbox.control.names import AI_DAG, DBT_DAG
from sandbox.control.pipeline import (
    Interrupted,
    RunReport,
    TaskState,
    date_range,
    run_pipeline,
    task_frame,
)

__all__ = [
    "AI_DAG",
    "DBT_DAG",
    "Interrupted",
    "RunReport",
    "TaskState",
    "configure",
    "date_range",
    "run_pipeline",
    "task_frame",
]
