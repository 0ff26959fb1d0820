"""Quality-gate drills: break the raw data (or a model) on purpose and watch the gate hold.

Each drill copies the shipped raw files and the dbt project into a scratch folder, breaks one
thing, and builds from there. A *gate* drill must fail the build with :class:`GateFailed`
naming the expected check; a *handled* drill documents what staging absorbs by design (the
build passes and the mart is unchanged). The notebooks and ``tests/reliability`` run them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sandbox.config import DEFAULT_RAW_DIR, SandboxError, environment
from sandbox.data.build import GateFailed, build, project_dir


@dataclass(frozen=True)
class Drill:
    """One way to break the input, and what the gate is expected to say about it."""

    name: str
    title: str
    breaks: Callable[[Path, Path], None]  # (raw_dir, project_dir) -> None, edits in place
    expect: str  # the failing check ("unique", "model", ...) or "handled"
    where: str | None = None  # "model.column" the failure must name
    explanation: str = ""


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
    """Point ``SANDBOX_RAW_DIR``/``SANDBOX_DBT_PROJECT_DIR`` at broken copies for the block."""
    if name not in DRILLS:
        raise SandboxError(f"unknown drill {name!r}: pick one of {', '.join(DRILLS)}")
    with tempfile.TemporaryDirectory(prefix=f"drill-{name}-", dir=workdir) as scratch:
        raw, project = Path(scratch) / "raw", Path(scratch) / "dbt_project"
        shutil.copytree(DEFAULT_RAW_DIR, raw)
        _copy_project(project)
        DRILLS[name].breaks(raw, project)
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



def run_drill(name: str, as_of_date="2026-11-01") -> DrillOutcome:
    """Build ``as_of_date`` from broken inputs and report whether the gate caught it."""
    with broken_inputs(name):
        try:
            build(as_of_date)
        except GateFailed as exc:
            return DrillOutcome(DRILLS[name], True, exc)
    return DrillOutcome(DRILLS[name], False, None)
