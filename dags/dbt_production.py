"""
### dbt_production: the data plane's daily build, and the gate

Every day at 02:00 UTC (from the first 02:00 after the DAG is switched on: no start date,
so no past interval runs at once) the single task `dbt_run` runs `dbt build` for the run's logical date
(`ds`, that day: the timetable is pinned to `CronTriggerTimetable`, so `ds` does not depend on
`[scheduler] create_cron_data_intervals`; passed to dbt as `as_of_date`): models, contracts and data tests, in one invocation.
(The dbt unit tests check the SQL, not the day's data, so they run where the SQL changes:
`make test` in CI, or `sandbox build --unit-tests`.) The tests *are* the quality gate: when one fails, `dbt_run` fails, and
`ai_recommendation_pipeline` (which waits for this task with an ExternalTaskSensor) never
sends a single row to the LLM.

**Retries.** A failed test is bad data, and bad data does not fix itself on a retry, so a
gate failure fails the task at once (no retry) and leaves the names of the failing tests in
the task's XCom (`gate_failures`). Other errors (a busy warehouse, a crash) are retried.

The task is thin on purpose: it calls `sandbox.control.tasks.dbt_run`, which calls the data
plane. No business logic lives in this file.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, dag, task

from sandbox.config import seconds_setting
from sandbox.control.names import DBT_DAG

RETRY_DELAY = timedelta(seconds=seconds_setting("SANDBOX_RETRY_DELAY_S", 300))


@dag(
    dag_id=DBT_DAG,
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-platform", "retries": 3, "retry_delay": RETRY_DELAY},
    tags=["data-plane", "dbt"],
    doc_md=__doc__,
)
def dbt_production():
    @task
    def dbt_run(ds: str | None = None):
        """Build and test every dbt model for the logical date; fail on a gate failure."""
        from sandbox.control.tasks import dbt_run

        return dbt_run(ds)

    dbt_run()


dbt_production()
