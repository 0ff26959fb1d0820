"""The callables the DAG tasks run: one plane function each, plus the control plane's policy.

A gate failure or a :class:`~sandbox.config.SandboxError` fails the task without retries;
:data:`STOP` (SIGTERM via ``on_kill``, Ctrl-C) sends no new request.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

from sandbox import config
from sandbox.config import SandboxError, parse_date
from sandbox.control.names import (
    DBT_TASK,
    DRIFT_TASK,
    DRIFT_XCOM_KEY,
    ERROR_XCOM_KEY,
    GATE_XCOM_KEY,
    INFER_TASK,
    PREPARE_TASK,
    SUMMARY_XCOM_KEY,
    WRITE_TASK,
    WRITTEN_XCOM_KEY,
)
from sandbox.control.runs import final_summary, record_drift, record_pipeline_run, run_outcome
from sandbox.control.task_output import quiet_http, task_summary
from sandbox.control.xcom import current_context, jsonable, pull, push

CONNECTION_ERRORS = frozenset({"APIConnectionError", "APITimeoutError"})
"""Failure classes meaning the API was not reached at all (no answer, nothing to retry per row)."""
PROBE_ROWS = 10
"""Rows a realtime run with the real API sends first, to learn whether the API answers at all."""

STOP = threading.Event()
"""Set by a stop request (SIGTERM, Ctrl-C, ``on_kill``): no new LLM request after it."""


@contextlib.contextmanager
def _failure_policy() -> Iterator[None]:
    """Apply the control plane's retry policy to the exception a plane raises.

    The message goes to XCom (``error``) first. A :class:`SandboxError` other than
    :class:`WarehouseBusy` becomes AirflowFailException (no retries); anything else is re-raised.
    """
    try:
        yield
    except SandboxError as exc:
        from sandbox.warehouse import WarehouseBusy

        push(ERROR_XCOM_KEY, str(exc))
        if isinstance(exc, WarehouseBusy):
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
    except Exception as exc:
        push(ERROR_XCOM_KEY, f"{type(exc).__name__}: {exc}")
        raise


def gate_failure_records(exc: Exception) -> list[dict]:
    """The failing dbt nodes of a GateFailed as plain dicts (node, test, rows, description)."""
    records = []
    for failure in getattr(exc, "failures", None) or []:
        record = {
            field: jsonable(getattr(failure, field, None))
            for field in ("node", "kind", "model", "column", "test", "failing_rows", "message")
        }
        describe = getattr(failure, "describe", None)
        record["description"] = describe() if callable(describe) else record["message"]
        records.append(record)
    return records or [{"description": str(exc).splitlines()[0]}]


def _build_summary(result: Any) -> dict:
    """The part of a BuildResult worth keeping in XCom: counts, seconds and row counts."""
    fields = ("as_of_date", "target", "models", "data_tests", "unit_tests", "elapsed_s", "rows")
    return {f: jsonable(getattr(result, f)) for f in fields if hasattr(result, f)}


def dbt_run(ds: str) -> dict:
    """Build the data plane for ``ds``; a failing dbt test fails the task without retries."""
    from sandbox.data import GateFailed, build

    with _failure_policy(), task_summary(DBT_TASK, ds) as line:
        try:
            result = build(parse_date(ds))
        except GateFailed as exc:
            records = gate_failure_records(exc)
            push(GATE_XCOM_KEY, records)
            line["failing tests"] = "; ".join(r.get("node") or "?" for r in records)
            raise
        summary = _build_summary(result)
        line.update(models=summary.get("models"), data_tests=summary.get("data_tests"))
    return summary


def prepare_features(ds: str) -> int:
    """Freeze the mart's rows for ``ds`` into ``decision.inference_inputs``; return the count."""
    from sandbox.decision import prepare_features

    with _failure_policy(), task_summary(PREPARE_TASK, ds) as line:
        line["rows frozen"] = count = int(prepare_features(parse_date(ds)))
    return count


def infer_settings(
    max_cost_usd: float | str | None = None, mode: str | None = None
) -> tuple[float | None, str]:
    """The run's spending ceiling and mode: the DAG params, else ``SANDBOX_MAX_COST_USD`` and
    ``SANDBOX_INFER_MODE`` (default: no ceiling, ``realtime``)."""
    return config.max_cost_usd(max_cost_usd), config.infer_mode(mode)


def _call(function, as_of: date, **kwargs) -> dict:
    """Call a decision-plane function with :data:`STOP` as its ``stop`` event; return its
    result as a JSON-friendly dict."""
    return jsonable(function(as_of, stop=STOP, **kwargs))


def merge_summaries(first: dict | None, then: dict) -> dict:
    """One summary for two calls on the same date: counts and cost add up, the second's
    status, failures and pending rows stand (it retried the first's failures)."""
    if not first:
        return then
    merged = dict(then)
    for key in ("done", "requests", "escalated", "input_tokens", "output_tokens", "cost_usd"):
        merged[key] = (first.get(key) or 0) + (then.get(key) or 0)
    merged["skipped"] = first.get("skipped") or 0
    merged["inputs"] = first.get("inputs") or then.get("inputs") or 0
    merged["batch_ids"] = list(
        dict.fromkeys([*first.get("batch_ids", []), *then.get("batch_ids", [])])
    )
    merged["notes"] = [*first.get("notes", []), *then.get("notes", [])]
    return merged


def unreachable(summary: dict) -> str | None:
    """Why the API was not reached, when every request of the run failed to connect."""
    classes = set(summary.get("failures_by_class") or {})
    if summary.get("done") or not summary.get("failed") or not classes <= CONNECTION_ERRORS:
        return None
    where = os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
    return (
        f"the LLM API at {where} was not reached: all {summary['failed']} requests sent failed "
        f"with {', '.join(sorted(classes))} (after the SDK's own retries), so the run stopped "
        "without trying the other rows: check the network, ANTHROPIC_BASE_URL, or run with "
        "--llm mock"
    )


def request_stop() -> None:
    """Ask the running inference to stop: set :data:`STOP`, which the decision plane checks
    before each new request (the requests in flight finish and their answers are kept)."""
    STOP.set()


@contextlib.contextmanager
def _stop_on_kill() -> Iterator[None]:
    """While the block runs, the running task's ``on_kill`` (what Airflow calls when a
    scheduler or ``sandbox run`` gets SIGTERM) calls :func:`request_stop`."""
    task = None
    with contextlib.suppress(Exception):
        from airflow.sdk import get_current_context

        task = get_current_context()["ti"].task
    if task is not None:
        task.on_kill = request_stop
    try:
        yield
    finally:
        if task is not None:
            with contextlib.suppress(AttributeError):
                del task.on_kill


_LAST: dict = {}
"""The last inference summary of this task (for its summary line, also when it fails)."""


def _check(summary: dict) -> dict:
    """Fail the task (no retries) when the run was interrupted or never reached the API."""
    _LAST["summary"] = summary
    if summary.get("status") == "interrupted" or STOP.is_set():
        push(SUMMARY_XCOM_KEY, summary)
        raise SandboxError(
            f"stopped on request: {summary.get('done', 0)} answers of this run kept "
            f"({summary.get('pending_left', 0)} rows left pending); a re-run resumes"
        )
    if reason := unreachable(summary):
        push(SUMMARY_XCOM_KEY, summary)
        raise SandboxError(reason)
    return summary


def run_llm_inference(ds: str, **options) -> dict:
    """Run the decision plane on the pending rows of ``ds``; return its summary as a dict.

    ``options``: ``model``, ``batch_size``, ``llm``, ``max_cost_usd``, ``mode`` (see
    :func:`_infer`). The task's log ends with one summary line, also when it fails.
    """
    _LAST.clear()
    with quiet_http(), task_summary(INFER_TASK, ds) as line:
        try:
            return _infer(ds, **options)
        finally:
            last = _LAST.get("summary") or {}
            line.update({key: last.get(field) for key, field in _LINE_FIELDS})


_LINE_FIELDS = (
    ("status", "status"), ("rows_done", "done"), ("resumed", "skipped"),
    ("failed", "failed"), ("pending", "pending_left"), ("requests", "requests"),
    ("cost_usd", "cost_usd"),
)  # fmt: skip


def _infer(
    ds: str,
    *,
    model: str | None = None,
    batch_size: int | None = None,
    llm: str | None = None,
    max_cost_usd: float | str | None = None,
    mode: str | None = None,
) -> dict:
    """Infer the pending rows of ``ds``; a real-API realtime run probes :data:`PROBE_ROWS` first.

    Batch mode submits, polls ``SANDBOX_BATCH_FIRST_WAIT_S`` (0) and leaves a batch still
    processing to ``wait_for_batch`` (status ``waiting``).
    """
    from sandbox.decision import run_llm_inference

    with _failure_policy(), _stop_on_kill():
        llm = config.llm_choice(llm)
        ceiling, mode = infer_settings(max_cost_usd, mode)
        as_of = parse_date(ds)
        common = {"llm": llm, "model": model, "mode": mode, "progress": False}
        if mode == "batch":
            wait = config.batch_first_wait_s()
            summary = _call(run_llm_inference, as_of, **common, batch_size=batch_size,
                            max_cost_usd=ceiling, wait_s=wait)  # fmt: skip
            return _check(summary)
        first = None
        if llm == "anthropic" and (batch_size is None or batch_size > PROBE_ROWS):
            first = _check(
                _call(run_llm_inference, as_of, **common, batch_size=PROBE_ROWS, max_cost_usd=ceiling)
            )
            if ceiling is not None:
                ceiling = max(0.0, ceiling - float(first.get("cost_usd") or 0.0))
            if batch_size is not None:
                batch_size -= PROBE_ROWS
        summary = _call(
            run_llm_inference, as_of, **common, batch_size=batch_size, max_cost_usd=ceiling
        )
        return _check(merge_summaries(first, summary))


def collect_batch(ds: str, ti, params: dict | None = None):
    """Sensor callable: done when the run's Message Batch has ended (results collected).

    Each poke resumes the batches stored in ``decision.batch_jobs`` for ``ds`` (one poll, no
    wait), so it survives a scheduler restart; between pokes the sensor holds no worker slot.
    """
    from airflow.sdk import PokeReturnValue

    from sandbox.decision import run_llm_inference

    params = params or {}
    previous = pull(ti, INFER_TASK) or {}
    if previous.get("status") != "waiting":
        return PokeReturnValue(is_done=True, xcom_value=previous)
    with _failure_policy(), _stop_on_kill(), quiet_http():
        ceiling, _ = infer_settings(params.get("max_cost_usd"), "batch")
        if ceiling is not None:
            ceiling = max(0.0, ceiling - float(previous.get("cost_usd") or 0.0))
        summary = _call(
            run_llm_inference,
            parse_date(ds),
            llm=config.llm_choice(params.get("llm")),
            model=params.get("model"),
            mode="batch",
            progress=False,
            max_cost_usd=ceiling,
            wait_s=0.0,
        )
        summary = _check(merge_summaries(previous, summary))
    done = summary.get("status") != "waiting"
    if done:
        summary = _batch_totals(summary)
    return PokeReturnValue(is_done=done, xcom_value=summary)


def _batch_totals(summary: dict) -> dict:
    """The whole batch run's counts, once its batches ended.

    A sensor's XCom does not survive a reschedule, so requests and cost are recounted from the
    ledger rows of the run's batches, and every row of the date not staged by now is failed.
    """
    from sandbox.warehouse import connect

    ids = summary.get("batch_ids") or []
    if ids:
        marks = ", ".join("?" * len(ids))
        with connect(read_only=True) as con:
            requests, cost = con.execute(
                f"select count(*), coalesce(sum(cost_usd), 0) from decision.llm_calls"
                f" where batch_id in ({marks})",
                ids,
            ).fetchone()
        summary = {**summary, "requests": int(requests), "cost_usd": round(float(cost), 8)}
    inputs, skipped = summary.get("inputs") or 0, summary.get("skipped") or 0
    not_staged = (summary.get("pending_left") or 0) + (summary.get("failed") or 0)
    summary = {**summary, "done": max(0, inputs - skipped - not_staged)}
    summary.update(failed=not_staged, pending_left=0)
    if not_staged and summary.get("status") == "ok":
        summary["status"] = "partial"
    return summary


def write_results(ds: str) -> int:
    """Upsert the staged answers of ``ds`` into ``marts.user_recommendations``; then fail the
    task (no retries) when the run is not a success (:func:`run_outcome`): what was answered is
    published either way."""
    from sandbox.decision import write_results

    with _failure_policy(), task_summary(WRITE_TASK, ds) as line:
        written = int(write_results(parse_date(ds)))
        line["published"] = written
        push(WRITTEN_XCOM_KEY, written)
        context = current_context()
        if context is not None:
            status, detail = run_outcome(final_summary(context["ti"]), written)
            if status != "success":
                raise SandboxError(f"run ended {status}: {detail}; {written} rows published")
            record_pipeline_run(context, succeeded=True, written=written)
    return written


def check_drift(ds: str, run_id: str | None = None) -> dict:
    """The drift watch: compare the answers of ``ds`` with the trailing window and record it.

The verdict goes to the log, XCom (``drift``) and the run's ``ops.pipeline_runs`` row; on
``drift`` the task then fails without retries (the answers stay published, ``status`` stays).
"""
    from sandbox.decision.drift import check_drift as watch

    with _failure_policy(), task_summary(DRIFT_TASK, ds) as line:
        report = watch(parse_date(ds))
        line["verdict"] = report.status
        record = jsonable(report.as_record())
        print(f"drift watch: {report.status}: {report.message}", flush=True)
        push(DRIFT_XCOM_KEY, record)  # before the row: see record_pipeline_run
        if run_id is not None:
            record_drift(run_id, record)
        if report.drifted:
            raise SandboxError(f"drift watch: {report.message}")
    return record

