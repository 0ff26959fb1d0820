"""The callables the DAG tasks run: one plane function each, plus the control plane's policy.

A gate failure or a :class:`~sandbox.config.SandboxError` fails the task without retries;
:data:`STOP` (SIGTERM via ``on_kill``, Ctrl-C) sends no new request. Logs end with ``summary:``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
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
from sandbox.control.runs import final_summary, pull, record_drift, record_pipeline_run, run_outcome

CONNECTION_ERRORS = frozenset({"APIConnectionError", "APITimeoutError"})  # API not reached
PROBE_ROWS = 10  # a real-API realtime run sends these first: does the API answer at all?
HTTP_LOGGERS = ("httpx", "httpx2", "anthropic", "anthropic._base_client")
STOP = threading.Event()  # set by SIGTERM, Ctrl-C or on_kill: no new LLM request after it


def current_context() -> dict | None:
    """The running task's context, or None outside a task (a test, a notebook)."""
    with contextlib.suppress(Exception):
        from airflow.sdk import get_current_context

        return get_current_context()
    return None


def push(key: str, value: Any) -> None:
    """Leave ``value`` in the running task's XCom (kept when the task then fails)."""
    with contextlib.suppress(Exception):  # outside a task there is nothing to push to
        current_context()["ti"].xcom_push(key=key, value=value)


def jsonable(value: Any) -> Any:
    """A JSON-friendly copy of a plane's result (dataclass, dict, date...) for XCom."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    text = json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, date) else str(v))
    return json.loads(text)


def _debug_only(record: logging.LogRecord) -> bool:
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger().isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def quiet_http() -> Iterator[None]:
    """While the block runs, the SDK's per-request HTTP lines go to DEBUG (a log tells a story)."""
    loggers = [logging.getLogger(name) for name in HTTP_LOGGERS]
    for logger in loggers:
        logger.addFilter(_debug_only)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(_debug_only)


@contextlib.contextmanager
def task_summary(task_id: str, ds: str) -> Iterator[dict]:
    """End the task's log with one line: what the ``with`` block put in the dict, and time."""
    started, line, ok = time.monotonic(), {}, False
    try:
        yield line
        ok = True
    finally:
        parts = [f"{k.replace('_', ' ')} {f'{v:.4f}' if isinstance(v, float) else v}"
                 for k, v in line.items() if v is not None]  # fmt: skip
        parts.append(f"{time.monotonic() - started:.1f} s")
        print(f"summary: {task_id} {ds} {'done' if ok else 'FAILED'}: {', '.join(parts)}",
              flush=True)  # fmt: skip


@contextlib.contextmanager
def _failure_policy() -> Iterator[None]:
    """The error goes to XCom first; a SandboxError other than WarehouseBusy is not retried."""
    from sandbox.warehouse import WarehouseBusy

    try:
        yield
    except Exception as exc:
        expected = isinstance(exc, SandboxError)
        push(ERROR_XCOM_KEY, str(exc) if expected else f"{type(exc).__name__}: {exc}")
        if not expected or isinstance(exc, WarehouseBusy):
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc


@contextlib.contextmanager
def _stop_on_kill() -> Iterator[None]:
    """While the block runs, the task's ``on_kill`` (called on SIGTERM) sets :data:`STOP`."""
    context = current_context()
    if context is None:
        yield
        return
    task = context["ti"].task
    task.on_kill = STOP.set
    try:
        yield
    finally:
        del task.on_kill


def gate_failure_records(exc: Exception) -> list[dict]:
    """The failing dbt nodes of a GateFailed as plain dicts (node, test, rows, description)."""
    records = [{**jsonable(f), "description": f.describe()} for f in getattr(exc, "failures", ())]
    return records or [{"description": str(exc).splitlines()[0]}]


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
        fields = ("as_of_date", "target", "models", "data_tests", "unit_tests", "elapsed_s", "rows")
        summary = {f: jsonable(getattr(result, f)) for f in fields}
        line.update(models=summary["models"], data_tests=summary["data_tests"])
    return summary


def prepare_features(ds: str) -> int:
    """Freeze the mart's rows for ``ds`` into ``decision.inference_inputs``; return the count."""
    from sandbox.decision import prepare_features

    with _failure_policy(), task_summary(PREPARE_TASK, ds) as line:
        line["rows frozen"] = count = int(prepare_features(parse_date(ds)))
    return count


def merge_summaries(first: dict | None, then: dict) -> dict:
    """One summary for two calls on the same date: counts and cost add up, the second's
    status, failures and pending rows stand (it retried the first's failures)."""
    if not first:
        return then
    added = ("done", "requests", "escalated", "input_tokens", "output_tokens", "cost_usd")
    batch_ids = first.get("batch_ids", []) + then.get("batch_ids", [])
    return {**then, **{key: (first.get(key) or 0) + (then.get(key) or 0) for key in added},
            "skipped": first.get("skipped") or 0,
            "inputs": first.get("inputs") or then.get("inputs") or 0,
            "batch_ids": list(dict.fromkeys(batch_ids)),
            "notes": first.get("notes", []) + then.get("notes", [])}  # fmt: skip


_LINE_FIELDS = (
    ("status", "status"), ("rows_done", "done"), ("resumed", "skipped"),
    ("failed", "failed"), ("pending", "pending_left"), ("requests", "requests"),
    ("cost_usd", "cost_usd"),
)  # fmt: skip


def _check(summary: dict, line: dict) -> dict:
    """Show ``summary`` on the summary line; fail the task (no retries) when the run was
    interrupted or never reached the API (every request failed to connect)."""
    line.update({key: summary.get(field) for key, field in _LINE_FIELDS})
    classes = set(summary.get("failures_by_class") or {})
    if summary.get("status") == "interrupted" or STOP.is_set():
        reason = (
            f"stopped on request: {summary.get('done', 0)} answers of this run kept "
            f"({summary.get('pending_left', 0)} rows left pending); a re-run resumes"
        )
    elif summary.get("failed") and not summary.get("done") and classes <= CONNECTION_ERRORS:
        where = os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        reason = (
            f"the LLM API at {where} was not reached: all {summary['failed']} requests sent "
            f"failed with {', '.join(sorted(classes))} (after the SDK's own retries), so the run "
            "stopped without trying the other rows: check the network, ANTHROPIC_BASE_URL, or "
            "run with --llm mock"
        )
    else:
        return summary
    push(SUMMARY_XCOM_KEY, summary)
    raise SandboxError(reason)


def _infer(ds: str, params: dict, **kwargs) -> dict:
    """One decision-plane call for ``ds`` (``llm``, ``model`` from ``params``), as a dict."""
    from sandbox.decision import run_llm_inference

    llm = config.llm_choice(params.get("llm"))
    return jsonable(run_llm_inference(parse_date(ds), llm=llm, model=params.get("model"),
                                      progress=False, stop=STOP, **kwargs))  # fmt: skip


def _left(ceiling: float | None, spent: dict) -> float | None:
    return None if ceiling is None else max(0.0, ceiling - float(spent.get("cost_usd") or 0.0))


def run_llm_inference(
    ds: str,
    *,
    model: str | None = None,
    batch_size: int | None = None,
    llm: str | None = None,
    max_cost_usd: float | str | None = None,
    mode: str | None = None,
) -> dict:
    """Run the decision plane on the pending rows of ``ds``; return its summary as a dict.
    Batch mode submits, polls for ``SANDBOX_BATCH_FIRST_WAIT_S``, then ``wait_for_batch`` waits."""
    params = {"llm": llm, "model": model}
    with quiet_http(), task_summary(INFER_TASK, ds) as line, _failure_policy(), _stop_on_kill():
        ceiling, mode = config.max_cost_usd(max_cost_usd), config.infer_mode(mode)
        if mode == "batch":
            wait_s = config.seconds_setting("SANDBOX_BATCH_FIRST_WAIT_S", 0.0)
            summary = _infer(ds, params, mode=mode, batch_size=batch_size, max_cost_usd=ceiling,
                             wait_s=wait_s)  # fmt: skip
            return _check(summary, line)
        first = None
        probing = batch_size is None or batch_size > PROBE_ROWS
        if config.llm_choice(llm) == "anthropic" and probing:
            probe = _infer(ds, params, mode=mode, batch_size=PROBE_ROWS, max_cost_usd=ceiling)
            first, ceiling = _check(probe, line), _left(ceiling, probe)
            if batch_size is not None:
                batch_size -= PROBE_ROWS
        summary = _infer(ds, params, mode=mode, batch_size=batch_size, max_cost_usd=ceiling)
        return _check(merge_summaries(first, summary), line)


def collect_batch(ds: str, ti, params: dict):
    """Sensor callable: done when the run's Message Batch has ended (results collected). Each
    poke polls the batches ``decision.batch_jobs`` holds for ``ds``, so it survives a restart."""
    from airflow.sdk import PokeReturnValue

    previous = pull(ti, INFER_TASK) or {}
    if previous.get("status") != "waiting":
        return PokeReturnValue(is_done=True, xcom_value=previous)
    with _failure_policy(), _stop_on_kill(), quiet_http():
        ceiling = _left(config.max_cost_usd(params.get("max_cost_usd")), previous)
        summary = _infer(ds, params, mode="batch", max_cost_usd=ceiling, wait_s=0.0)
        summary = _check(merge_summaries(previous, summary), {})
    done = summary.get("status") != "waiting"
    return PokeReturnValue(is_done=done, xcom_value=_batch_totals(summary) if done else summary)


def _batch_totals(summary: dict) -> dict:
    """The whole batch run's counts: a sensor's XCom does not survive a reschedule, so they
    come from the ledger rows of its batches; every row not staged by now is failed."""
    from sandbox.warehouse import connect

    ids = summary.get("batch_ids") or []
    if ids:
        with connect(read_only=True) as con:
            requests, cost = con.execute(
                "select count(*), coalesce(sum(cost_usd), 0) from decision.llm_calls"
                f" where batch_id in ({', '.join('?' * len(ids))})",
                ids,
            ).fetchone()
        summary = {**summary, "requests": int(requests), "cost_usd": round(float(cost), 8)}
    inputs, skipped = summary.get("inputs") or 0, summary.get("skipped") or 0
    not_staged = (summary.get("pending_left") or 0) + (summary.get("failed") or 0)
    summary.update(done=max(0, inputs - skipped - not_staged), failed=not_staged, pending_left=0)
    if not_staged and summary.get("status") == "ok":
        summary["status"] = "partial"
    return summary


def write_results(ds: str) -> int:
    """Upsert the staged answers of ``ds`` into ``marts.user_recommendations``, then fail (no
    retries) unless the run is a success (:func:`run_outcome`): the answers stay published."""
    from sandbox.decision import write_results

    with _failure_policy(), task_summary(WRITE_TASK, ds) as line:
        line["published"] = written = int(write_results(parse_date(ds)))
        push(WRITTEN_XCOM_KEY, written)
        if (context := current_context()) is not None:
            status, detail = run_outcome(final_summary(context["ti"]), written)
            if status != "success":
                raise SandboxError(f"run ended {status}: {detail}; {written} rows published")
            record_pipeline_run(context, succeeded=True, written=written)
    return written


def check_drift(ds: str, run_id: str) -> dict:
    """The drift watch on the answers of ``ds``: its verdict goes to the log, XCom and the run's
    row; on ``drift`` the task fails (no retries), the answers and ``status`` stay."""
    from sandbox.decision.drift import check_drift as watch

    with _failure_policy(), task_summary(DRIFT_TASK, ds) as line:
        report = watch(parse_date(ds))
        line["verdict"] = report.status
        record = jsonable(report.as_record())
        print(f"drift watch: {report.status}: {report.message}", flush=True)
        push(DRIFT_XCOM_KEY, record)  # before the row: see record_pipeline_run
        record_drift(run_id, record)
        if report.drifted:
            raise SandboxError(f"drift watch: {report.message}")
    return record
