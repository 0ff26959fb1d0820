"""The quality gate's verdict: what failed, where (model, column, raw file), and the fix.

dbt's run results become :class:`GateFailure` lines; a raw file that cannot be read fails
the gate before dbt runs. No message repeats a raw value: raw text is user-controlled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from sandbox.config import SandboxError, raw_dir
from sandbox.data.publish import published_name, published_now
from sandbox.data.raw import RAW_COLUMNS, csv_problem, raw_format, unreadable_timestamps
from sandbox.warehouse import connect

RAW_TABLE_OF = {"staging.stg_users": "users", "staging.stg_user_events": "events"}
# the raw column behind each staged column staging renames (the others keep their name)
RENAMED = {
    ("staging.stg_users", "user_id"): "id",
    ("staging.stg_users", "country_code"): "country",
    ("staging.stg_user_events", "event_id"): "id",
    ("staging.stg_user_events", "event_at"): "created_at",
    ("staging.stg_user_events", "properties_json"): "properties",
}
FAILED = ("error", "fail", "runtime error")
MESSAGE_CHARS = 400
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class GateFailure:
    """One failing node of a build: a data test, a unit test or a model (incl. its contract)."""

    node: str
    kind: str  # "data test", "unit test", "model"
    model: str | None
    column: str | None
    test: str | None
    failing_rows: int | None
    message: str
    raw_file: str | None = None
    detail: str | None = None  # what the check saw, e.g. the latest event and the threshold
    raw_column: str | None = None  # the raw file's column behind ``column``

    def describe(self) -> str:
        """One readable line: what failed, where, how many rows (and the raw file behind it)."""
        where = ".".join(p for p in (self.model, self.column) if p)
        column = f", column {self.raw_column}" if self.raw_column else ""
        source = f" (raw file: {self.raw_file}{column})" if self.raw_file else ""
        detail = f": {self.detail}" if self.detail else ""
        if self.kind == "data test":
            rows = f"{self.failing_rows} failing row{'s' if self.failing_rows != 1 else ''}"
            return f"{self.test}{' on ' + where if where else ''}: {rows}{source}{detail}"
        if self.kind == "unit test":
            return f"unit test {self.test} on {where}: {self.message}"
        return f"model {where} did not build{source}: {self.message}"


class GateFailed(SandboxError):
    """The quality gate failed: nothing was published (``published``: what the marts hold)."""

    def __init__(
        self, as_of: date, failures: list[GateFailure], skipped: list[str], published: str
    ):
        self.as_of, self.failures, self.skipped, self.published = as_of, failures, skipped, published
        checks, nodes = len(failures), len(skipped)
        lines = [
            f"the quality gate failed for {as_of}: {checks} check{'s' if checks != 1 else ''} "
            f"failed and {nodes} downstream node{'s were' if nodes != 1 else ' was'} skipped; "
            f"nothing was published ({published}).",
            *(f"  - {f.describe()}" for f in failures),
            _fix(failures),
        ]
        super().__init__("\n".join(lines))


def _fix(failures: list[GateFailure]) -> str:
    if all(f.kind == "unit test" for f in failures):
        return (
            "Fix the model's SQL (or the unit test's expected rows, if the rule changed), "
            "then build again with --unit-tests."
        )
    if any(f.test in ("fresh_as_of", "volume_as_of") for f in failures):
        return (
            "The raw files are late or incomplete for this date: deliver the missing events to "
            "SANDBOX_RAW_DIR (or build a date the export covers), then build again. A "
            "deliberate gap is a decision: set the dbt vars freshness_max_lag_days / "
            "volume_min_ratio in dbt_project.yml."
        )
    return "Fix the raw data (SANDBOX_RAW_DIR) or the model named above, then build again."


def check_raw_files(as_of: date, target: str) -> None:
    """Fail the gate before dbt runs when a raw CSV file cannot be read (see sandbox.data.raw)."""
    folder = raw_dir()
    if raw_format(folder) != "csv":
        return
    failures = [
        GateFailure(f"source.raw.{table}", "model", model, None, None, None, problem,
                    raw_file=str(folder / f"{table}.csv"))  # fmt: skip
        for model, table in RAW_TABLE_OF.items()
        if (problem := csv_problem(folder / f"{table}.csv", RAW_COLUMNS[table]))
    ]
    if failures:
        raise GateFailed(as_of, failures, [], published_now(target))


def check_results(as_of: date, results: list, target: str) -> None:
    """Raise :class:`GateFailed` when a node of a build's run results failed."""
    failed = [r for r in results if str(r.status) in FAILED]
    if not failed:
        return
    relations = {r.node.unique_id: relation(r.node) for r in results if kind(r.node) == "model"}
    folder = raw_dir()
    fmt = raw_format(folder)
    failures = []
    for result in failed:
        failure = _failure(result, relations)
        if failure.model in RAW_TABLE_OF:
            failure = replace(
                failure,
                raw_file=str(folder / f"{RAW_TABLE_OF[failure.model]}.{fmt}"),
                raw_column=RENAMED.get((failure.model, failure.column), failure.column),
            )
        if target == "duckdb":
            failure = replace(failure, detail=_detail(result.node, failure, fmt))
        failures.append(failure)
    skipped = [r.node.name for r in results if str(r.status) == "skipped"]
    raise GateFailed(as_of, failures, skipped, published_now(target))


def kind(node) -> str:
    """``model``, ``data test`` or ``unit test``: what a dbt node is."""
    resource = str(node.resource_type)
    return {"test": "data test", "unit_test": "unit test"}.get(resource, resource)


def relation(node) -> str:
    """A model's relation under its *published* name (a candidate mart reads ``marts.x``)."""
    return published_name(f"{node.schema}.{node.name}")


def _failure(result, relations: dict[str, str]) -> GateFailure:
    node = result.node
    what = kind(node)
    message = _clean(str(result.message or result.status))
    if what == "data test":
        meta = getattr(node, "test_metadata", None)
        test = meta.name if meta else node.name
        attached = getattr(node, "attached_node", None)
        model = relations.get(attached or "", attached)
        column = getattr(node, "column_name", None)
        return GateFailure(node.unique_id, what, model, column, test, result.failures, message)
    if what == "unit test":
        tested = getattr(node, "tested_node_unique_id", None) or ""
        model = relations.get(tested, tested.rsplit(".", 1)[-1] or None)
        message = unit_test_diff(str(result.message or "")) or message
        return GateFailure(node.unique_id, what, model, None, node.name.split(".")[-1], None, message)
    if "constraint" in message.lower() and "check" in message.lower():
        message = f"contract constraint failed before the swap ({message})"
    return GateFailure(node.unique_id, what, relation(node), None, None, None, message)


def _clean(message: str) -> str:
    """One line, no terminal colours, at most MESSAGE_CHARS characters."""
    text = " ".join(_ANSI.sub("", message).split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def unit_test_diff(message: str) -> str | None:
    """dbt's unit-test diff table (daff's) as one readable line (None: not one), e.g.
    ``user_id u1: event_count_7d expected 2, got 3``; ``+++``/``---``: an unexpected/missing row."""
    lines = [line for line in _ANSI.sub("", message).replace("\r", "").splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if line.lstrip().startswith("@@")), None)
    if header is None:
        return None
    columns = [c.strip() for c in lines[header].split(",")[1:]]
    found = []
    for line in lines[header + 1 :]:
        marker, *cells = [c.strip() for c in line.split(",")]
        pairs = list(zip(columns, cells, strict=False))
        if marker in ("+++", "---"):
            row = "unexpected row " if marker == "+++" else "missing row "
            found.append(row + ", ".join(f"{c}={v}" for c, v in pairs))
        elif "→" in marker and cells:
            changed = [f"{c} expected {v.replace('→', ', got ')}" for c, v in pairs if "→" in v]
            found.append(f"{columns[0]} {cells[0]}: " + "; ".join(changed))
    return _clean("actual rows differ from the expected ones: " + " | ".join(found)) if found else None


def _detail(node, failure: GateFailure, fmt: str) -> str | None:
    """What a failing check saw: its first ``problem``, or where unreadable timestamps are."""
    timestamp = failure.column in ("signed_up_at", "event_at")
    if failure.test == "not_null" and timestamp and failure.raw_file:
        # a NULL in a staged timestamp is a raw value staging could not read
        return unreadable_timestamps(Path(failure.raw_file), failure.raw_column, fmt)
    sql = getattr(node, "compiled_code", None) or ""
    if failure.kind != "data test" or " as problem" not in sql:
        return None
    try:
        with connect(read_only=True) as con:
            row = con.execute(f"select problem from ({sql}) as failing limit 1").fetchone()
    except Exception:  # noqa: BLE001 - a detail is a courtesy; the failure itself stands
        return None
    return _clean(str(row[0])) if row and row[0] is not None else None
