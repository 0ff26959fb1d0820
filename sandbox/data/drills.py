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
    dbt_project_dir,
    environment,
)
from sandbox.data.build import build
from sandbox.data.gate import GateFailed

MART = "models/marts/fct_user_features_for_ai.sql"
FIRST_USER = '"u000001"'  # of the shipped raw files (data/seed), which every drill copies


@dataclass(frozen=True)
class Drill:
    """One way to break the input, and what the gate is expected to say about it."""

    title: str
    expect: str  # the failing check ("unique", "model", ...) or "handled"
    where: str | None = None  # "model.column" the failure must name
    explanation: str = ""
    as_of: date = SHIPPED_AS_OF_DATE  # the date the drill builds
    users: Callable[[list[str]], list[str]] | None = None  # rewrites the lines of users.csv
    encoding: str = "utf-8"  # the encoding users.csv is written back in
    event: str | None = None  # a row appended to events.csv (after its id)
    events_before: str | None = None  # keep only the events created before this time
    mart: tuple[str, str] | None = None  # (old, new) in the feature mart's SQL

    def breaks(self, raw: Path, project: Path) -> None:
        """Break the copied raw files in ``raw`` (and the copied dbt ``project``), in place."""
        if self.users:
            _edit_lines(raw / "users.csv", self.users, self.encoding)
        if self.event:
            _edit_lines(raw / "events.csv", lambda ls: [*ls, f"99999999,{self.event}"])
        if self.events_before:  # compared with each row's created_at, its 4th field
            _edit_lines(
                raw / "events.csv",
                lambda ls: ls[:1] + [x for x in ls[1:] if x.split(",")[3] < self.events_before],
            )
        if self.mart:
            _edit_model(project, MART, *self.mart)


def _edit_lines(path: Path, edit: Callable[[list[str]], list[str]], encoding="utf-8") -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_bytes(("\n".join(edit(lines)) + "\n").encode(encoding))


def _first_row(old: str, new: str) -> Callable[[list[str]], list[str]]:
    return lambda ls: [ls[0], ls[1].replace(old, new, 1), *ls[2:]]


def _edit_model(project: Path, relative: str, old: str, new: str) -> None:
    model = project / relative
    sql = model.read_text(encoding="utf-8")
    if old not in sql:
        raise SandboxError(f"the drill cannot find {old!r} in {model}")
    model.write_text(sql.replace(old, new, 1), encoding="utf-8")


DRILLS: dict[str, Drill] = {
    "null_key": Drill(
        "A user with no id", "not_null", "staging.stg_users.user_id",
        "Keys are tested at the earliest layer; everything downstream is skipped.",
        users=_first_row(FIRST_USER, ""),
    ),
    "duplicate_key": Drill(
        "The same user twice", "unique", "staging.stg_users.user_id",
        "A duplicate would double a user's recommendations (and their cost).",
        users=lambda ls: [*ls, ls[1]],
    ),
    "unknown_plan_tier": Drill(
        "An unknown plan tier ('platinum')", "accepted_values",
        "staging.stg_users.plan_tier",
        "The prompt's tiers are a closed list; a new tier needs a decision, not a guess.",
        users=_first_row(',"', ',"platinum_'),
    ),
    "orphan_event": Drill(
        "An event for a user who does not exist", "relationships",
        "staging.stg_user_events.user_id", "Orphans mean a broken export or join upstream.",
        event='"u_ghost","login",2026-10-30 10:00:00,"{}"',
    ),
    "runaway_summary": Drill(
        "A model change that makes summaries over 500 characters",
        "model", "marts.fct_user_features_for_ai",
        "The contract's check constraint stops the swap: the published mart keeps its rows.",
        mart=("'User has been on the ', plan_tier",
              "case when days_since_signup > 400 then repeat('Valued long-time customer. ', 20) "
              "else '' end, 'User has been on the ', plan_tier"),
    ),
    "unknown_event_type": Drill(
        "An event type nobody has seen", "accepted_values",
        "staging.stg_user_events.event_type",
        event=f'{FIRST_USER},"teleport",2026-10-30 10:00:00,"{{}}"',
    ),
    "unparseable_timestamp": Drill(
        "A timestamp that is not a timestamp", "not_null",
        "staging.stg_user_events.event_at",
        "Staging casts with try_cast, so a bad value becomes NULL and the not_null test counts it.",
        event=f'{FIRST_USER},"login",yesterday-ish,"{{}}"',
    ),
    "event_before_signup": Drill(
        "An event years before the user signed up",
        "assert_no_events_before_signup",
        event=f'{FIRST_USER},"login",2001-01-01 00:00:00,"{{}}"',
    ),
    "empty_users_file": Drill(
        "A users file with only its header", "has_rows",
        "staging.stg_users", users=lambda ls: ls[:1],
    ),
    "missing_column": Drill(
        "The users file lost its plan_tier column", "model", "staging.stg_users",
        users=lambda ls: [",".join(x.split(",")[:1] + x.split(",")[2:]) for x in ls],
    ),
    "wrong_delimiter": Drill(
        "The users file uses ';' instead of ','", "model", "staging.stg_users",
        users=lambda ls: [x.replace(",", ";") for x in ls],
    ),
    "wrong_encoding": Drill(
        "The users file is Latin-1, not UTF-8", "model", "staging.stg_users",
        users=_first_row('"NL"', '"Zürich"'), encoding="latin-1",
    ),
    "future_event": Drill(
        "An event dated next year", "handled", None,
        "Handled: models only see events before the as-of date, so it changes nothing today.",
        event=f'{FIRST_USER},"login",2027-06-01 00:00:00,"{{}}"',
    ),
    "stale_export": Drill(
        "The export stalled: the last three days of events never arrived",
        "fresh_as_of", "staging.stg_user_events.event_at",
        "Freshness is measured against the as-of date: the latest event must be at most "
        "1 day (var freshness_max_lag_days) before it.",
        events_before="2026-10-29",
    ),
    "half_day_export": Drill(
        "Half a day delivered: the last day's events stop at noon",
        "volume_as_of", "staging.stg_user_events.event_at",
        "Fresh, but incomplete: the last day holds under 0.6 (var volume_min_ratio) of the "
        "trailing 7-day daily average.",
        events_before="2026-10-31 12:00:00",
    ),
    "empty_date": Drill(
        "An empty day: no event at all on the day before the as-of date",
        "volume_as_of", "staging.stg_user_events.event_at",
        "The last day's volume is 0 against a daily average of ~208 (and it is stale too).",
        events_before="2026-10-31",  # the shipped events end at the as-of date
    ),
    "before_any_data": Drill(
        "A date before any data (1900-01-01)",
        "fresh_as_of", "staging.stg_user_events.event_at",
        "No event before the date: without this check it would publish two empty marts.",
        as_of=date(1900, 1, 1),
    ),
    "mart_test_failure": Drill(
        "A model change that upper-cases plan_tier in the feature mart",
        "accepted_values", "marts.fct_user_features_for_ai.plan_tier",
        "A mart-level data test: it runs on the candidate, so the bad rows are never published.",
        mart=("users.plan_tier,\n", "upper(users.plan_tier) as plan_tier,\n"),
    ),
    "huge_properties": Drill(
        "A 1 MB properties blob", "handled", None,
        "Handled: properties are kept as text and never reach the prompt or the summary.",
        event=f'{FIRST_USER},"login",2026-10-01 00:00:00,"{{""x"": ""' + "A" * 1_000_000 + '""}"',
    ),
}  # fmt: skip


@dataclass(frozen=True)
class DrillOutcome:
    """What a drill's build did: ``error`` is its GateFailed (None: the build passed)."""

    drill: Drill
    error: GateFailed | None

    @property
    def as_expected(self) -> bool:
        """True when the build failed on the expected check (or passed, for a handled drill)."""
        if self.error is None:
            return self.drill.expect == "handled"
        return any(
            (f.kind if f.kind == "model" else f.test) == self.drill.expect
            and self.drill.where in (None, ".".join(p for p in (f.model, f.column) if p))
            for f in self.error.failures
        )


def _copy_project(to: Path) -> Path:
    shutil.copytree(dbt_project_dir(), to, ignore=shutil.ignore_patterns("target", "logs"))
    return to


@contextmanager
def broken_inputs(name: str) -> Iterator[tuple[Path, Path]]:
    """Point ``SANDBOX_RAW_DIR``/``SANDBOX_DBT_PROJECT_DIR`` at broken copies; yields both
    (the project is copied only when the drill changes a model: dbt reuses the shipped parse)."""
    if name not in DRILLS:
        raise SandboxError(f"unknown drill {name!r}: pick one of {', '.join(DRILLS)}")
    drill = DRILLS[name]
    with tempfile.TemporaryDirectory(prefix=f"drill-{name}-") as scratch:
        raw = Path(scratch) / "raw"
        shutil.copytree(DEFAULT_RAW_DIR, raw)
        project = _copy_project(Path(scratch) / "dbt_project") if drill.mart else dbt_project_dir()
        drill.breaks(raw, project)
        with environment({"SANDBOX_RAW_DIR": str(raw), "SANDBOX_DBT_PROJECT_DIR": str(project)}):
            yield raw, project


@contextmanager
def window_off_by_one() -> Iterator[Path]:
    """Point ``SANDBOX_DBT_PROJECT_DIR`` at a project copy whose 7-day window also counts events
    *at* the as-of instant: no data test sees it; ``test_seven_day_window_boundaries`` does."""
    with tempfile.TemporaryDirectory(prefix="logic-bug-") as scratch:
        project = _copy_project(Path(scratch) / "dbt_project")
        window = "models/intermediate/int_user_engagement_rolling.sql"
        bug = ("where event_at < {{ as_of_date() }}", "where event_at <= {{ as_of_date() }}")
        _edit_model(project, window, *bug)
        with environment({"SANDBOX_DBT_PROJECT_DIR": str(project)}):
            yield project


def run_drill(name: str) -> DrillOutcome:
    """Build the drill's date from broken inputs; did the gate catch it?"""
    with broken_inputs(name):
        try:
            build(DRILLS[name].as_of)
        except GateFailed as exc:
            return DrillOutcome(DRILLS[name], exc)
    return DrillOutcome(DRILLS[name], None)
