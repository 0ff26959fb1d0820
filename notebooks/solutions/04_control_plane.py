"""Worked solutions for 04 · The control plane (``tests/test_course.py`` checks them)."""

# Exercise 1: the ExternalTaskSensor's external_dag_id / external_task_id.
sensor_dag_id = "dbt_production"
sensor_task_id = "dbt_run"

# Exercise 2: after re-running 2026-11-01, the latest ops.pipeline_runs row for it says how
# many LLM requests that run sent. Every row was already staged, so: none.
rerun_sql = """
select llm_requests from ops.pipeline_runs
where execution_date = '2026-11-01'
order by recorded_at desc
limit 1
"""
