"""The golden set: labelled users whose summaries come from the current dbt models.

The summaries are built by the real dbt project for :data:`GOLDEN_AS_OF` from
``data/golden``, so a change to the SQL changes what the evaluation sends.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sandbox.config import (
    ROOT,
    SandboxError,
    dbt_project_dir,
    environment,
    eval_cache_dir,
    part_file,
)

GOLDEN_DIR = ROOT / "data" / "golden"
GOLDEN_AS_OF = date(2026, 11, 1)  # the as-of date the golden raw files were written for
FEATURES_TABLE = "marts.fct_user_features_for_ai"
_DBT_INPUTS = ("models", "macros", "tests", "dbt_project.yml", "profiles.yml")
CACHE_FORMAT = 2  # bump when the cached rows' layout changes, so older cache files are not read


@dataclass(frozen=True)
class GoldenCase:
    """One labelled user: the mart row's summary and the answers a reviewer accepts."""

    user_id: str
    segment: str
    case: str
    acceptable: tuple[str, ...]
    reason: str
    row: dict  # the mart row, as dbt built it

    @property
    def summary(self) -> str:
        return self.row["user_summary_for_llm"]


@dataclass(frozen=True)
class GoldenSet:
    """Every golden case; ``inputs_sha`` hashes what the summaries were built from (the golden
    files and the dbt project), ``summaries_sha`` the summaries themselves."""

    cases: list[GoldenCase]
    inputs_sha: str
    summaries_sha: str
    cached: bool
    build_s: float

    def __len__(self) -> int:
        return len(self.cases)


def read_labels(folder: Path) -> list[dict]:
    """The rows of ``labels.csv``, with ``acceptable`` split into a tuple."""
    for name in ("labels.csv", "users.csv", "events.csv"):
        if not (folder / name).is_file():
            raise SandboxError(
                f"no {name} in {folder}: the golden set needs users.csv, events.csv and "
                "labels.csv; restore data/golden from git, or point --golden at such a folder"
            )
    with (folder / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["acceptable"] = tuple(t.strip() for t in row["acceptable"].split("|") if t.strip())
    return rows


def inputs_sha(folder: Path) -> str:
    """A hash of the golden raw files and every dbt file that shapes the mart."""
    project = dbt_project_dir()
    files = [(folder, folder / "users.csv"), (folder, folder / "events.csv")] + [
        (project, path)
        for name in _DBT_INPUTS
        for path in sorted([project / name, *(project / name).rglob("*")])
    ]
    digest = hashlib.sha256(f"format {CACHE_FORMAT}".encode())
    for base, path in files:
        if path.is_file():
            digest.update(path.relative_to(base).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _mart_rows(folder: Path, sha: str) -> tuple[list[dict], bool]:
    """The golden mart rows (dates as ISO text) and whether they were cached; the build's warehouse
    is kept in the cache (one per dbt project folder) so the next build reuses dbt's parse."""
    from sandbox.data import build
    from sandbox.warehouse import connect

    cached_file = eval_cache_dir() / f"golden-{sha}.json"
    cached_file.parent.mkdir(parents=True, exist_ok=True)
    with open(eval_cache_dir() / "build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers build the set once
        cached = cached_file.is_file()
        if not cached:
            place = hashlib.sha256(str(dbt_project_dir()).encode()).hexdigest()[:8]
            warehouse = eval_cache_dir() / f"build-{place}" / "golden.duckdb"
            with environment({"SANDBOX_WAREHOUSE": str(warehouse), "SANDBOX_RAW_DIR": str(folder)}):
                build(GOLDEN_AS_OF)
                with connect(read_only=True, path=warehouse) as con:
                    mart = con.sql(f"select * from {FEATURES_TABLE} order by user_id")
                    rows = mart.to_arrow_table().to_pylist()
            part = part_file(cached_file)
            part.write_text(json.dumps(rows, indent=1, default=str))
            part.replace(cached_file)  # atomic: a reader sees all of it or nothing
    return json.loads(cached_file.read_text()), cached


def load_golden(folder: Path | str = GOLDEN_DIR) -> GoldenSet:
    """Labels joined to the mart rows built by the current dbt models (see module docstring)."""
    folder = Path(folder).resolve()
    labels = read_labels(folder)
    started = time.perf_counter()
    sha = inputs_sha(folder)
    rows, cached = _mart_rows(folder, sha)
    seconds = time.perf_counter() - started
    by_user = {row["user_id"]: row for row in rows}
    missing = [label["user_id"] for label in labels if label["user_id"] not in by_user]
    if missing:
        raise SandboxError(
            f"{len(missing)} labelled golden user(s) have no row in {FEATURES_TABLE} "
            f"({', '.join(missing[:5])}): add them to {folder / 'users.csv'} with a signup "
            f"before {GOLDEN_AS_OF}, or remove their labels"
        )
    cases = [GoldenCase(**label, row=by_user[label["user_id"]]) for label in labels]
    summaries = hashlib.sha256(
        "\n".join(f"{c.user_id}\t{c.summary}" for c in cases).encode()
    ).hexdigest()[:16]
    return GoldenSet(cases, sha, summaries, cached, seconds)


def add_golden_case(
    folder: Path | str,
    user_id: str,
    *,
    plan_tier: str,
    signed_up_days_ago: int,
    events: list[tuple[int, str | None]],
    acceptable: list[str],
    reason: str,
    segment: str,
    case: str,
) -> None:
    """Append one labelled user to the golden files in ``folder``.
    ``events``: ``(days_ago, event_type)`` before :data:`GOLDEN_AS_OF` (``None``: unclassified)."""
    folder = Path(folder)
    if any(row["user_id"] == user_id for row in read_labels(folder)):
        raise SandboxError(f"{user_id} is already in {folder / 'labels.csv'}: pick a new id")
    as_of = datetime.combine(GOLDEN_AS_OF, datetime.min.time())
    signed = as_of - timedelta(days=signed_up_days_ago) + timedelta(hours=9)
    with (folder / "events.csv").open(newline="") as handle:
        next_id = 1 + max((int(row["id"]) for row in csv.DictReader(handle)), default=0)
    with (folder / "users.csv").open("a", newline="") as handle:
        handle.write(f'"{user_id}","{plan_tier}",{signed:%Y-%m-%d %H:%M:%S},"US"\n')
    with (folder / "events.csv").open("a", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for offset, (days_ago, event_type) in enumerate(sorted(events, key=lambda e: -e[0])):
            at = as_of - timedelta(days=days_ago) + timedelta(hours=10, seconds=offset)
            writer.writerow(
                [next_id + offset, user_id, event_type or "", f"{at:%Y-%m-%d %H:%M:%S}",
                 '{"source": "web", "duration_ms": 500}']
            )  # fmt: skip
    with (folder / "labels.csv").open("a", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerow(
            [user_id, segment, case, "|".join(acceptable), reason]
        )
