"""The control plane: Airflow DAGs decide what runs, when, and in what order.

The DAG files in ``dags/`` stay thin; the callables they run live in
:mod:`sandbox.control.tasks`. This is the only package that knows both the data plane
(:mod:`sandbox.data`) and the decision plane (:mod:`sandbox.decision`); it talks to each
through one function per task, and they talk to each other only through tables.

Importing it is cheap: Airflow is imported when a pipeline actually runs.
"""

from sandbox.control.airflow_env import configure
from sandbox.control.pipeline import (
    AI_DAG,
    DBT_DAG,
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
