"""The control plane's names, once (a renamed task changes one line): DAG, task and XCom ids."""

from __future__ import annotations

DBT_DAG = "dbt_production"
AI_DAG = "ai_recommendation_pipeline"
DAG_IDS = (DBT_DAG, AI_DAG)

DBT_TASK = "dbt_run"
SENSOR_TASK = "wait_for_dbt_completion"
PREPARE_TASK = "prepare_features"
INFER_TASK = "run_llm_inference"
BATCH_TASK = "wait_for_batch"
WRITE_TASK = "write_results"
DRIFT_TASK = "check_drift"
AI_TASKS = (SENSOR_TASK, PREPARE_TASK, INFER_TASK, BATCH_TASK, WRITE_TASK, DRIFT_TASK)

# ``sandbox run``'s exit status per ``ops.pipeline_runs.status`` (the worst date wins)
EXIT_CODES = {"success": 0, "partial": 3, "budget": 3, "gate_blocked": 1, "failed": 1}

GATE_XCOM_KEY = "gate_failures"
ERROR_XCOM_KEY = "error"
SUMMARY_XCOM_KEY = "summary"
WRITTEN_XCOM_KEY = "written"
DRIFT_XCOM_KEY = "drift"

RUN_HOUR_UTC = 2  # the schedule's hour: a date's logical date is 02:00 UTC on that day
