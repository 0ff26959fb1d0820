"""Quality-gate drills: break the raw data (or a model) on purpose and watch the gate hold.

A *gate* drill must fail with :class:`GateFailed` naming the expected check; a *handled*
one shows what staging absorbs by design. Each works on a scratch copy.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sandbox.config import (
    DEFAULT_RAW_DIR,
    SHIPPED_AS_OF_DATE,
    SandboxError,
    environment,
    parse_date,
)
from sandbox.data.build import build
from sandbox.data.dbt_runner import project_dir
from sandbox.data.gate import GateFailed


@dataclass(frozen=True)
class Drill:
    """One way to break the input, and what the gate is expected to say about it."""

    name: str
    title: str
    breaks: Callable[[Path, Path], None]  # (raw_dir, project_dir) -> None, edits in place
    expect: str  # the failing check ("unique", "model", ...) or "handled"
    where: str | None = None  # "model.column" the failure must name
    explanation: str = ""
    as_of: date = SHIPPED_AS_OF_DATE  # the date the drill builds


def _edit_lines(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")


def _first_row(path: Path, old: str, new: str) -> None:
    def edit(lines: list[str]) -> list[str]:
        assert old in lines[1], f"{old!r} not in the first data row of {path.name}"
        lines[1] = lines[1].replace(old, new, 1)
        return lines

    _edit_lines(path, edit)


def _append(path: Path, row: str) -> None:
    _edit_lines(path, lambda lines: [*lines, row])


def _first_user(raw: Path) -> str:
    return raw.joinpath("users.csv").read_text().splitlines()[1].split(",")[0]


def _runaway_summary(_: Path, project: Path) -> None:
    model = project / "models" / "marts" / "fct_user_features_for_ai.sql"
    sql = model.read_text()
    anchor = "'User has been on the ', plan_tier"
    if anchor not in sql:
        raise SandboxError(f"the runaway-summary drill cannot find {anchor!r} in {model}")
    model.write_text(
        sql.replace(
            anchor,
            "case when days_since_signup > 400 then repeat('Valued long-time customer. ', 20) "
            f"else '' end, {anchor}",
        )
    )


def _wrong_delimiter(raw: Path, _: Path) -> None:
    _edit_lines(raw / "users.csv", lambda lines: [line.replace(",", ";") for line in lines])


def _wrong_encoding(raw: Path, _: Path) -> None:
    path = raw / "users.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"NL"', '"Zürich"').replace('"US"', '"Zürich"')
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def _keep_events(raw: Path, keep: Callable[[str], bool]) -> None:
    """Keep the header and the events whose ``created_at`` (4th field) passes ``keep``."""
    _edit_lines(
        raw / "events.csv", lambda lines: lines[:1] + [x for x in lines[1:] if keep(x.split(",")[3])]
    )


def _mart_change(old: str, new: str) -> Callable[[Path, Path], None]:
    """A change to the feature mart's SQL (``old`` replaced by ``new``)."""

    def breaks(_: Path, project: Path) -> None:
        model = project / "models" / "marts" / "fct_user_features_for_ai.sql"
        sql = model.read_text()
        if old not in sql:
            raise SandboxError(f"the drill cannot find {old!r} in {model}")
        model.write_text(sql.replace(old, new, 1))

    return breaks


def _missing_column(raw: Path, _: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        return [",".join(line.split(",")[:1] + line.split(",")[2:]) for line in lines]

    _edit_lines(raw / "users.csv", edit)


DRILLS: dict[str, Drill] = {
    d.name: d
    for d in [
        Drill(
            "null_key", "A user with no id",
            lambda raw, _: _first_row(raw / "users.csv", _first_user(raw), ""),
            "not_null", "staging.stg_users.user_id",
            "Keys are tested at the earliest layer; everything downstream is skipped.",
        ),
        Drill(
            "duplicate_key", "The same user twice",
            lambda raw, _: _append(raw / "users.csv", (raw / "users.csv").read_text().splitlines()[1]),
            "unique", "staging.stg_users.user_id",
            "A duplicate would double a user's recommendations (and their cost).",
        ),
        Drill(
            "unknown_plan_tier", "An unknown plan tier ('platinum')",
            lambda raw, _: _first_row(raw / "users.csv", ',"', ',"platinum_'),
            "accepted_values", "staging.stg_users.plan_tier",
            "The prompt's tiers are a closed list; a new tier needs a decision, not a guess.",
        ),
        Drill(
            "orphan_event", "An event for a user who does not exist",
            lambda raw, _: _append(raw / "events.csv", '99999999,"u_ghost","login",2026-10-30 10:00:00,"{}"'),
            "relationships", "staging.stg_user_events.user_id",
            "Orphans mean a broken export or join upstream.",
        ),
        Drill(
            "runaway_summary", "A model change that makes summaries over 500 characters",
            _runaway_summary,
            "model", "marts.fct_user_features_for_ai",
            "The contract's check constraint stops the swap: the published mart keeps its rows.",
        ),
        Drill(
            "unknown_event_type", "An event type nobody has seen",
            lambda raw, _: _append(raw / "events.csv", '99999998,' + _first_user(raw) + ',"teleport",2026-10-30 10:00:00,"{}"'),
            "accepted_values", "staging.stg_user_events.event_type",
        ),
        Drill(
            "unparseable_timestamp", "A timestamp that is not a timestamp",
            lambda raw, _: _append(raw / "events.csv", '99999997,' + _first_user(raw) + ',"login",yesterday-ish,"{}"'),
            "not_null", "staging.stg_user_events.event_at",
            "Staging casts with try_cast, so a bad value becomes NULL and the not_null test counts it.",
        ),
        Drill(
            "event_before_signup", "An event years before the user signed up",
            lambda raw, _: _append(raw / "events.csv", '99999996,' + _first_user(raw) + ',"login",2001-01-01 00:00:00,"{}"'),
            "assert_no_events_before_signup", None,
        ),
        Drill(
            "empty_users_file", "A users file with only its header",
            lambda raw, _: _edit_lines(raw / "users.csv", lambda lines: lines[:1]),
            "has_rows", "staging.stg_users",
        ),
        Drill("missing_column", "The users file lost its plan_tier column", _missing_column, "model", "staging.stg_users"),
        Drill("wrong_delimiter", "The users file uses ';' instead of ','", _wrong_delimiter, "model", "staging.stg_users"),
        Drill("wrong_encoding", "The users file is Latin-1, not UTF-8", _wrong_encoding, "model", "staging.stg_users"),
        Drill(
            "future_event", "An event dated next year",
            lambda raw, _: _append(raw / "events.csv", '99999995,' + _first_user(raw) + ',"login",2027-06-01 00:00:00,"{}"'),
            "handled", None,
            "Handled: models only see events before the as-of date, so it changes nothing today.",
        ),
        Drill(
            "stale_export", "The export stalled: the last three days of events never arrived",
            lambda raw, _: _keep_events(raw, lambda at: at < "2026-10-29"),
            "fresh_as_of", "staging.stg_user_events.event_at",
            "Freshness is measured against the as-of date: the latest event must be at most "
            "1 day (var freshness_max_lag_days) before it.",
        ),
        Drill(
            "half_day_export", "Half a day delivered: the last day's events stop at noon",
            lambda raw, _: _keep_events(raw, lambda at: at < "2026-10-31 12:00:00"),
            "volume_as_of", "staging.stg_user_events.event_at",
            "Fresh, but incomplete: the last day holds under 0.6 (var volume_min_ratio) of the "
            "trailing 7-day daily average.",
        ),
        Drill(
            "empty_date", "An empty day: no event at all on the day before the as-of date",
            lambda raw, _: _keep_events(raw, lambda at: not at.startswith("2026-10-31")),
            "volume_as_of", "staging.stg_user_events.event_at",
            "The last day's volume is 0 against a daily average of ~208 (and it is stale too).",
        ),
        Drill(
            "before_any_data", "A date before any data (1900-01-01)",
            lambda raw, _: None,
            "fresh_as_of", "staging.stg_user_events.event_at",
            "No event before the date: without this check it would publish two empty marts.",
            as_of=date(1900, 1, 1),
        ),
        Drill(
            "mart_test_failure", "A model change that upper-cases plan_tier in the feature mart",
            _mart_change("users.plan_tier,\n", "upper(users.plan_tier) as plan_tier,\n"),
            "accepted_values", "marts.fct_user_features_for_ai.plan_tier",
            "A mart-level data test: it runs on the candidate, so the bad rows are never published.",
        ),
        Drill(
            "huge_properties", "A 1 MB properties blob",
            lambda raw, _: _append(raw / "events.csv", '99999994,' + _first_user(raw) + ',"login",2026-10-01 00:00:00,"{""x"": ""' + "A" * 1_000_000 + '""}"'),
            "handled", None,
            "Handled: properties are kept as text and never reach the prompt or the summary.",
        ),
    ]
}  # fmt: skip


@dataclass(frozen=True)
class DrillOutcome:
    """What a drill's build did."""

    drill: Drill
    gate_failed: bool
    error: GateFailed | None

    @property
    def as_expected(self) -> bool:
        """True when the build failed on the expected check (or passed, for a handled drill)."""
        if self.drill.expect == "handled":
            return not self.gate_failed
        if self.error is None:
            return False
        for failure in self.error.failures:
            named = ".".join(p for p in (failure.model, failure.column) if p)
            test = failure.kind if failure.kind == "model" else failure.test
            if test == self.drill.expect and (self.drill.where is None or named == self.drill.where):
                return True
        return False


@contextmanager
def broken_inputs(name: str, workdir: Path | None = None) -> Iterator[tuple[Path, Path]]:
    """Point ``SANDBOX_RAW_DIR``/``SANDBOX_DBT_PROJECT_DIR`` at broken copies for the block.

    Yields ``(raw folder, dbt project)``: the project is the scratch copy when the drill
    changed it, and the shipped project otherwise.
    """
    if name not in DRILLS:
        raise SandboxError(f"unknown drill {name!r}: pick one of {', '.join(DRILLS)}")
    with tempfile.TemporaryDirectory(prefix=f"drill-{name}-", dir=workdir) as scratch:
        raw, project = Path(scratch) / "raw", Path(scratch) / "dbt_project"
        shutil.copytree(DEFAULT_RAW_DIR, raw)
        shipped = _files(_copy_project(project))
        DRILLS[name].breaks(raw, project)
        if _files(project) == shipped:  # only the data is broken: build the project itself
            project = project_dir()  # (dbt's saved parse of it is reused)
        with environment({"SANDBOX_RAW_DIR": str(raw), "SANDBOX_DBT_PROJECT_DIR": str(project)}):
            yield raw, project


WINDOW_BUG = (
    "models/intermediate/int_user_engagement_rolling.sql",
    "where event_at < {{ as_of_date() }}",
    "where event_at <= {{ as_of_date() }}",
)
"""A logic bug for the unit tests: the 7-day window also counts events *at* the as-of instant."""


@contextmanager
def window_off_by_one(workdir: Path | None = None) -> Iterator[Path]:
    """Point ``SANDBOX_DBT_PROJECT_DIR`` at a copy of the project with :data:`WINDOW_BUG` in it.

    No data test can see this bug on the shipped data (no event falls exactly on the as-of
    midnight); the unit test ``test_seven_day_window_boundaries`` does.
    """
    with tempfile.TemporaryDirectory(prefix="logic-bug-", dir=workdir) as scratch:
        project = _copy_project(Path(scratch) / "dbt_project")
        relative, old, new = WINDOW_BUG
        model = project / relative
        sql = model.read_text(encoding="utf-8")
        if old not in sql:
            raise SandboxError(f"{relative} no longer contains {old!r}: update WINDOW_BUG")
        model.write_text(sql.replace(old, new), encoding="utf-8")
        with environment({"SANDBOX_DBT_PROJECT_DIR": str(project)}):
            yield project


def _copy_project(to: Path) -> Path:
    shutil.copytree(project_dir(), to, ignore=shutil.ignore_patterns("target", "logs"))
    return to


def _files(folder: Path) -> list[tuple[str, int, int]]:
    """Every file under ``folder``: relative path, size, modification time (copies keep it)."""
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    )


def run_drill(name: str, as_of: date | str | None = None) -> DrillOutcome:
    """Build the drill's date (or ``as_of``) from broken inputs; did the gate catch it?"""
    as_of = DRILLS[name].as_of if as_of is None else parse_date(as_of)
    with broken_inputs(name):
        try:
            build(as_of)
        except GateFailed as exc:
            return DrillOutcome(DRILLS[name], True, exc)
    return DrillOutcome(DRILLS[name], False, None)
