"""The callables the DAG tasks run: one plane function each, plus Airflow's failure semantics.

Each function takes the run's logical date (``ds``) and calls exactly one function of the
data or decision plane. What it adds is control-plane policy:

- a gate failure (:class:`sandbox.data.GateFailed`) fails the task *without retries*, and
  the failing tests are pushed to XCom (``gate_failures``) so ``sandbox run`` and the UI can
  say what blocked the run;
- a :class:`~sandbox.config.SandboxError` names a cause a retry cannot fix (a missing API key,
  an unknown model), so it fails without retries too; only :class:`WarehouseBusy` (another
  process holds the DuckDB lock) and unexpected errors are left to Airflow's retries.

Airflow is imported lazily, so ``sandbox.control`` stays cheap to import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from sandbox.config import SandboxError, parse_date

GATE_XCOM_KEY = "gate_failures"
ERROR_XCOM_KEY = "error"


def _push(key: str, value: Any, ti=None) -> None:
    """Leave ``value`` in the running task's XCom (kept when the task then fails)."""
    try:
        if ti is None:
            from airflow.sdk import get_current_context

            ti = get_current_context()["ti"]
        ti.xcom_push(key=key, value=value)
    except Exception:  # called outside a task (a test, a notebook): nothing to push to
        pass


@contextlib.contextmanager
def _failure_policy() -> Iterator[None]:
    """Apply the control plane's retry policy to the exception a plane raises.

    The message goes to XCom (``error``) first, so ``sandbox run`` and the UI can show the
    cause. A :class:`SandboxError` becomes AirflowFailException (no retries), except
    :class:`WarehouseBusy`; any other exception is re-raised for Airflow to retry.
    """
    try:
        yield
    except SandboxError as exc:
        from sandbox.warehouse import WarehouseBusy

        _push(ERROR_XCOM_KEY, str(exc))
        if isinstance(exc, WarehouseBusy):
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
    except Exception as exc:
        _push(ERROR_XCOM_KEY, f"{type(exc).__name__}: {exc}")
        raise


def _jsonable(value: Any) -> Any:
    """A JSON-friendly copy of a plane's result (dataclass, dict, date...) for XCom."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def gate_failure_records(exc: Exception) -> list[dict]:
    """The failing dbt nodes of a GateFailed as plain dicts (node, test, rows, description)."""
    records = []
    for failure in getattr(exc, "failures", None) or []:
        record = {
            field: _jsonable(getattr(failure, field, None))
            for field in ("node", "kind", "model", "column", "test", "failing_rows", "message")
        }
        describe = getattr(failure, "describe", None)
        record["description"] = describe() if callable(describe) else record["message"]
        records.append(record)
    return records or [{"description": str(exc).splitlines()[0]}]


def _build_summary(result: Any) -> dict:
    """The part of a BuildResult worth keeping in XCom: counts, seconds and row counts."""
    fields = ("as_of_date", "target", "models", "data_tests", "unit_tests", "elapsed_s", "rows")
    return {f: _jsonable(getattr(result, f)) for f in fields if hasattr(result, f)}


def dbt_run(ds: str) -> dict:
    """Build the data plane for ``ds``; a failing dbt test fails the task without retries."""
    from sandbox.data import GateFailed, build

    with _failure_policy():
        try:
            result = build(parse_date(ds))
        except GateFailed as exc:
            _push(GATE_XCOM_KEY, gate_failure_records(exc))
            raise
    return _build_summary(result)


def prepare_features(ds: str) -> int:
    """Freeze the mart's rows for ``ds`` into ``decision.inference_inputs``; return the count."""
    from sandbox.decision import prepare_features

    with _failure_policy():
        return int(prepare_features(parse_date(ds)))


def run_llm_inference(
    ds: str, *, model: str | None = None, batch_size: int | None = None, llm: str | None = None
) -> dict:
    """Run the decision plane on the pending rows of ``ds``; return its summary as a dict.

    ``llm`` falls back to ``SANDBOX_LLM`` (the decision plane's own default is ``mock``).
    """
    from sandbox.decision import run_llm_inference

    llm = llm or os.environ.get("SANDBOX_LLM") or None
    with _failure_policy():
        summary = run_llm_inference(
            parse_date(ds), llm=llm, model=model, batch_size=batch_size, progress=False
        )
    return _jsonable(summary)


def write_results(ds: str) -> int:
    """Upsert the staged answers of ``ds`` into ``marts.user_recommendations``."""
    from sandbox.decision import write_results

    with _failure_policy():
        return int(write_results(parse_date(ds)))


def _xcom(ti, task_id: str) -> Any:
    try:
        return ti.xcom_pull(task_ids=task_id)
    except Exception:  # outside a task runner (e.g. a DAG-level callback) XCom is unreachable
        return None


def record_pipeline_run(context, *, succeeded: bool) -> None:
    """Task callback: upsert one ``ops.pipeline_runs`` row for the run of ``context``.

    ``status`` is ``success``, ``gate_blocked`` (the sensor gave up: dbt's gate did not pass
    for this date) or ``failed``. LLM requests, cost and failures come from
    ``run_llm_inference``'s result, so a rerun that sends nothing records 0 requests; rows
    are what ``write_results`` wrote (0 when it did not run).
    """
    from sandbox.warehouse import connect, ensure_tables

    ti = context["ti"]
    day = parse_date(context["ds"])
    if succeeded:
        status = "success"
    elif ti.task_id == "wait_for_dbt_completion":
        status = "gate_blocked"
    else:
        status = "failed"
    summary = _xcom(ti, "run_llm_inference") or {}
    written = _xcom(ti, "write_results") if succeeded else 0
    with connect() as con:
        ensure_tables(con, "ops.pipeline_runs")
        con.execute(
            "insert or replace into ops.pipeline_runs values (?, ?, ?, ?, ?, ?, ?, now())",
            [
                day,
                context["run_id"],
                status,
                int(written or 0),
                int(summary.get("failed") or 0),
                int(summary.get("requests") or 0),
                float(summary.get("cost_usd") or 0.0),
            ],
        )
