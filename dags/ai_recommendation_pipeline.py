"""
### ai_recommendation_pipeline: clean rows in, structured recommendations out

Runs daily at 02:00, after `dbt_production` has built and tested the data plane:

1. `wait_for_dbt_completion`: an ExternalTaskSensor on `dbt_production.dbt_run` for the
   **same logical date**. It only passes when that task succeeded, i.e. when every dbt test
   passed. Reschedule mode frees the worker slot between pokes. Timeout and poke interval
   come from `SANDBOX_SENSOR_TIMEOUT_S` / `SANDBOX_SENSOR_POKE_S` (1 h / 1 min); on a
   timeout the three tasks below do not run: *no LLM request is made on untested data*.
2. `prepare_features`: freezes the mart rows for the date into `decision.inference_inputs`.
3. `run_llm_inference`: the decision plane calls the LLM for pending rows only, so a rerun
   of the same date sends no request for rows already answered.
4. `write_results`: idempotent upsert into `marts.user_recommendations`.

After `write_results` succeeds, its `on_success_callback` writes a row to `ops.pipeline_runs`
(status, rows, failures, LLM requests, cost), the stand-in for alerts, e-mails and dashboard
refreshes; when a task fails for good, `on_failure_callback` records the run as `failed`, or
`gate_blocked` when the sensor gave up.

**Params.** `model` and `batch_size` (empty = the decision plane's defaults) and `llm`
(`mock` or `anthropic`; empty = `SANDBOX_LLM`, default `mock`).

**Retries.** 3, with a delay (`SANDBOX_RETRY_DELAY_S`, default 5 min), for what a retry can
fix: a busy warehouse, a crashed worker, an API outage the SDK's own retries outlasted.
Errors that name a cause a retry cannot fix (a missing API key, an unknown model) fail at once.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import Param, dag, task

RETRY_DELAY = timedelta(seconds=float(os.environ.get("SANDBOX_RETRY_DELAY_S", "300")))
SENSOR_TIMEOUT_S = float(os.environ.get("SANDBOX_SENSOR_TIMEOUT_S", "3600"))
SENSOR_POKE_S = float(os.environ.get("SANDBOX_SENSOR_POKE_S", "60"))


def record_success(context) -> None:
    """Callback after write_results: write the run's summary to ops.pipeline_runs."""
    from sandbox.control.tasks import record_pipeline_run

    record_pipeline_run(context, succeeded=True)


def record_failure(context) -> None:
    """Callback when any task fails for good: record the failed (or gate-blocked) run."""
    from sandbox.control.tasks import record_pipeline_run

    record_pipeline_run(context, succeeded=False)


@dag(
    dag_id="ai_recommendation_pipeline",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": RETRY_DELAY,
        "on_failure_callback": record_failure,
    },
    params={
        "model": Param(None, type=["null", "string"], description="LLM model id"),
        "batch_size": Param(None, type=["null", "integer"], minimum=1),
        "llm": Param(None, type=["null", "string"], enum=[None, "mock", "anthropic"]),
    },
    tags=["ai", "recommendations", "decision-plane"],
    doc_md=__doc__,
)
def ai_recommendation_pipeline():
    wait_for_dbt = ExternalTaskSensor(
        task_id="wait_for_dbt_completion",
        external_dag_id="dbt_production",
        external_task_id="dbt_run",
        mode="reschedule",
        timeout=SENSOR_TIMEOUT_S,
        poke_interval=SENSOR_POKE_S,
    )

    @task
    def prepare_features(ds: str | None = None) -> int:
        from sandbox.control.tasks import prepare_features

        return prepare_features(ds)

    @task
    def run_llm_inference(ds: str | None = None, params: dict | None = None):
        from sandbox.control.tasks import run_llm_inference

        params = params or {}
        return run_llm_inference(
            ds,
            model=params.get("model"),
            batch_size=params.get("batch_size"),
            llm=params.get("llm"),
        )

    @task(on_success_callback=record_success)
    def write_results(ds: str | None = None) -> int:
        from sandbox.control.tasks import write_results

        return write_results(ds)

    wait_for_dbt >> prepare_features() >> run_llm_inference() >> write_results()


ai_recommendation_pipeline()
