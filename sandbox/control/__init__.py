"""The control plane: Airflow DAGs decide what runs, when, and in what order.

The DAG files in ``dags/`` stay thin and call :mod:`sandbox.control.tasks`; this is the only
package that knows both the data plane and the decision plane (they talk through tables).
Importing it is cheap: Airflow is imported when a pipeline runs.
"""

from sandbox.control.airflow_env import configure
from sandbox.control.names import AI_DAG, DBT_DAG
from sandbox.control.pipeline import Interrupted, date_range, run_pipeline
from sandbox.control.report import RunReport, TaskState, task_frame

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
