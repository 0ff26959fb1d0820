"""
### ai_recommendation_pipeline: clean rows in, structured recommendations out

Runs daily at 02:00 UTC from the first 02:00 after it is switched on (no start date, so no
past interval runs at once; `ds` = that day = the as-of date), after `dbt_production`:

1. `wait_for_dbt_completion`: an ExternalTaskSensor on `dbt_production.dbt_run` for the
   **same logical date**; it passes when that task succeeded, i.e. every dbt test passed, and
   fails when it failed for good, within two pokes (its log names the failing tests; reschedule
   mode; `SANDBOX_SENSOR_TIMEOUT_S` / `SANDBOX_SENSOR_POKE_S`, 1 h / 1 min). Either way,
   nothing below runs: *no LLM request is made on untested data*.
2. `prepare_features`: freezes the mart rows for the date into `decision.inference_inputs`.
3. `run_llm_inference`: answers the pending rows only (a rerun sends nothing for rows already
   answered); when the API cannot be reached it fails at once, naming the cause.
4. `wait_for_batch`: batch mode waits for the Message Batch (reschedule mode; its id is in
   `decision.batch_jobs`, so it survives a restart; `SANDBOX_BATCH_POKE_S` /
   `SANDBOX_BATCH_TIMEOUT_S`, 5 min / 25 h). Realtime: passes at once.
5. `write_results`: idempotent upsert into `marts.user_recommendations`; then the task fails
   (no retry) if rows failed, the budget stopped the run, or nothing was published.
6. `check_drift` (beside `write_results`): the drift watch compares the answers with the 7 days
   before (`drift.toml`); verdict in its log, XCom and `ops.pipeline_runs.drift_status`. On
   `drift` it fails (no retry): the run is red, no answer is withheld.

One row per run goes to `ops.pipeline_runs` (`write_results` writes it on success, a failure
callback otherwise): `success`, `partial`, `budget`, `gate_blocked` or `failed`, with the
requests, cost and rows of every attempt of the run (a drift verdict never changes it).

**Params** (empty = default): `llm` (`SANDBOX_LLM`, else `mock`), `mode` (`SANDBOX_INFER_MODE`,
else `realtime`), `max_cost_usd` (`SANDBOX_MAX_COST_USD`, else no ceiling), `model`, `batch_size`.

**Retries.** 3, after `SANDBOX_RETRY_DELAY_S` (5 min), for a busy warehouse or a crashed worker.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import CronTriggerTimetable, Param, chain, dag, task

from sandbox.config import LLM_CHOICES, MODES, seconds_setting
from sandbox.control.names import AI_DAG, BATCH_TASK, DBT_DAG, DBT_TASK, SENSOR_TASK

RETRY_DELAY = timedelta(seconds=seconds_setting("SANDBOX_RETRY_DELAY_S", 300))
SENSOR_TIMEOUT_S = seconds_setting("SANDBOX_SENSOR_TIMEOUT_S", 3600)
SENSOR_POKE_S = seconds_setting("SANDBOX_SENSOR_POKE_S", 60)
BATCH_TIMEOUT_S = seconds_setting("SANDBOX_BATCH_TIMEOUT_S", 25 * 3600)
BATCH_POKE_S = seconds_setting("SANDBOX_BATCH_POKE_S", 300)


def record_failure(context) -> None:
    """Callback when a task fails for good: record the run as not successful, and why."""
    from sandbox.control.runs import record_pipeline_run
    record_pipeline_run(context, succeeded=False)


def collect_batch(ds, ti, params):
    from sandbox.control.tasks import collect_batch
    return collect_batch(ds, ti, params)


@dag(
    dag_id=AI_DAG,
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-platform", "retries": 3, "retry_delay": RETRY_DELAY,
                  "on_failure_callback": record_failure},  # fmt: skip
    params={
        "llm": Param(None, type=["null", "string"], enum=[None, *LLM_CHOICES]),
        "mode": Param(None, type=["null", "string"], enum=[None, *MODES]),
        "max_cost_usd": Param(None, type=["null", "number"], minimum=0),
        "model": Param(None, type=["null", "string"], description="LLM model id"),
        "batch_size": Param(None, type=["null", "integer"], minimum=1),
    },
    tags=["ai", "recommendations", "decision-plane"],
    doc_md=__doc__,
)
def ai_recommendation_pipeline():
    wait_for_dbt = ExternalTaskSensor(
        task_id=SENSOR_TASK, external_dag_id=DBT_DAG, external_task_id=DBT_TASK,
        allowed_states=["success"], failed_states=["failed"], mode="reschedule",
        timeout=SENSOR_TIMEOUT_S, poke_interval=SENSOR_POKE_S,
        retries=2, retry_delay=timedelta(seconds=SENSOR_POKE_S),
    )  # fmt: skip

    @task
    def prepare_features(ds: str | None = None) -> int:
        from sandbox.control.tasks import prepare_features

        return prepare_features(ds)

    @task
    def run_llm_inference(ds: str | None = None, params: dict | None = None):
        from sandbox.control.tasks import run_llm_inference

        p = params or {}
        keys = ("model", "batch_size", "llm", "max_cost_usd", "mode")
        return run_llm_inference(ds, **{k: p.get(k) for k in keys})

    wait_for_batch = PythonSensor(
        task_id=BATCH_TASK, python_callable=collect_batch, mode="reschedule",
        poke_interval=BATCH_POKE_S, timeout=BATCH_TIMEOUT_S,
    )  # fmt: skip

    @task
    def write_results(ds: str | None = None) -> int:
        from sandbox.control.tasks import write_results

        return write_results(ds)

    @task
    def check_drift(ds: str | None = None, run_id: str | None = None) -> dict:
        from sandbox.control.tasks import check_drift
        return check_drift(ds, run_id)

    chain(wait_for_dbt, prepare_features(), run_llm_inference(), wait_for_batch,
          [write_results(), check_drift()])  # fmt: skip


ai_recommendation_pipeline()
