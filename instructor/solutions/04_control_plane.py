"""Worked solutions for 04 · The control plane (``tests/course/test_checks.py`` checks them)."""

# Exercise 1: a DAG of your own with one check task, written to `my_dag` by %%writefile.
# The task reads the control plane's own record, ops.pipeline_runs, for the run's `ds` and
# raises when that date has no successful run: Airflow marks the task failed (an alert would
# hang off that). The heavy import happens inside the task, as in the shipped DAGs.
pipeline_health_dag = '''
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule="0 3 * * *", start_date=datetime(2026, 10, 1), catchup=False)
def pipeline_health():
    @task(retries=0)
    def check_last_run(ds=None):
        from sandbox.warehouse import query_df

        runs = query_df(
            f"select count(*) as n from ops.pipeline_runs "
            f"where execution_date = DATE '{ds}' and status = 'success'"
        )
        if runs["n"].iloc[0] == 0:
            raise ValueError(f"no successful pipeline run recorded for {ds}")

    check_last_run()


pipeline_health()
'''

# Exercise 2: run 2026-10-29 twice (run_pipeline(["2026-10-29"]) two times), then read both
# ops.pipeline_runs rows in the order they were recorded: the first run paid for every row,
# the re-run found nothing pending.
rerun_sql = """
select llm_requests from ops.pipeline_runs
where execution_date = '2026-10-29' and status = 'success'
order by recorded_at
"""
