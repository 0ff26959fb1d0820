"""Deterministic raw-data generator: the ``users`` and ``events`` files the course reads.

Same arguments, same bytes (NumPy, written with Arrow: a million users in under a minute).
The shipped files in ``data/seed`` come from ``generate(users=500, days=60, seed=42)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sandbox.config import SHIPPED_AS_OF_DATE, SandboxError

PLAN_TIERS = {"free": 0.55, "starter": 0.25, "pro": 0.15, "enterprise": 0.05}  # tier: share
EVENT_TYPES = {  # event type: share of the events
    "login": 0.30,
    "view_dashboard": 0.25,
    "create_report": 0.12,
    "share_report": 0.07,
    "invite_teammate": 0.04,
    "export_csv": 0.08,
    "api_call": 0.10,
    "view_billing": 0.04,
}
COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "AU", "NL")
SOURCES = ("web", "ios", "android", "api")
# Each user's behaviour segment shapes their events over the days before the as-of date
# (events stop at its midnight: the data a 02:00 run would see):
#   active  45 %  steady, ~0.6 a day
#   power    7 %  steady, ~2 a day
#   fading  25 %  frequent at first, thinning out to nothing ~2 weeks ago
#   dormant 15 %  a handful, all more than two weeks ago
#   silent   8 %  none at all
# Edge cases on purpose: ~0.5 % of events have no event_type (staging drops them), some
# users have no events in the last 7 days, some none at all, some signed up in the window.
SEGMENTS = ("active", "power", "fading", "dormant", "silent")
SEGMENT_WEIGHTS = (0.45, 0.07, 0.25, 0.15, 0.08)
SEGMENT_RATE_PER_DAY = (0.6, 2.0, 0.5, 0.15, 0.0)
NULL_EVENT_TYPE_SHARE = 0.005
CSV_MAX_USERS = 10_000  # the default format up to it is CSV (readable, diffable), Parquet above


@dataclass(frozen=True)
class GeneratedFiles:
    """What :func:`generate` wrote."""

    users_path: Path
    events_path: Path
    users: int
    events: int
    as_of: date


def _choice(rng: np.random.Generator, n: int, weights: Iterable[float]) -> np.ndarray:
    """Indices 0..len(weights)-1 drawn with the given weights (int8, vectorised)."""
    cumulative = np.cumsum(list(weights))
    cumulative /= cumulative[-1]
    return np.searchsorted(cumulative, rng.random(n), side="right").astype(np.int8)


def _dictionary_strings(indices: np.ndarray, values: list[str], mask=None) -> pa.Array:
    """A string column from small integer codes (fast for millions of rows); ``mask``: missing."""
    return pa.DictionaryArray.from_arrays(
        pa.array(indices.astype(np.int32), mask=mask, type=pa.int32()),
        pa.array(values, type=pa.string()),
    ).cast(pa.string())


def generate(
    users: int = 500,
    days: int = 60,
    seed: int = 42,
    out: Path | str = "data/generated",
    as_of: date = SHIPPED_AS_OF_DATE,
    fmt: str = "auto",
) -> GeneratedFiles:
    """Write ``users`` and ``events`` files for ``users`` users over ``days`` days to ``out``;
    ``fmt`` is ``csv``, ``parquet`` or ``auto`` (CSV up to 10,000 users, Parquet above)."""
    if users < 1:
        raise SandboxError(f"--users must be at least 1 (got {users})")
    if days < 8:
        raise SandboxError(f"--days must be at least 8 to fill a 7-day window (got {days})")
    if fmt not in ("auto", "csv", "parquet"):
        raise SandboxError(f"--format must be csv, parquet or auto (got {fmt!r})")
    if fmt == "auto":
        fmt = "csv" if users <= CSV_MAX_USERS else "parquet"
    rng = np.random.default_rng(seed)
    as_of_s = (as_of - date(1970, 1, 1)).days * 86_400  # the as-of midnight, in Unix seconds
    window_s = days * 86_400
    width = max(6, len(str(users)))
    user_ids = [f"u{i:0{width}d}" for i in range(1, users + 1)]
    users_table, segment, signup_age_s = _users(rng, user_ids, as_of_s, window_s)
    owner, created_at = _event_times(rng, segment, signup_age_s, as_of_s, window_s)
    events_table = _events(rng, owner, created_at, user_ids)
    users_path, events_path = _write(Path(out), fmt, users_table, events_table)
    return GeneratedFiles(users_path, events_path, users, len(owner), as_of)


def _users(rng: np.random.Generator, user_ids: list[str], as_of_s: int, window_s: int):
    """The users table, each user's segment and sign-up age in seconds (~20 % signed up
    inside the window, the rest up to three years earlier)."""
    n = len(user_ids)
    recent = rng.random(n) < 0.2
    signup_age_s = np.where(
        recent,
        rng.integers(86_400, window_s, n),
        rng.integers(window_s, 3 * 365 * 86_400, n),
    )
    plan = _choice(rng, n, PLAN_TIERS.values())
    country = _choice(rng, n, (1.0,) * len(COUNTRIES))
    segment = _choice(rng, n, SEGMENT_WEIGHTS)
    table = pa.table(
        {
            "id": pa.array(user_ids, type=pa.string()),
            "plan_tier": _dictionary_strings(plan, list(PLAN_TIERS)),
            "signed_up_at": pa.array(as_of_s - signup_age_s, type=pa.timestamp("s")),
            "country": _dictionary_strings(country, list(COUNTRIES)),
        }
    )
    return table, segment, signup_age_s


def _event_times(rng, segment, signup_age_s, as_of_s: int, window_s: int):
    """(owner index, created_at seconds) of every event, in time order: each user's active
    span depends on the segment; fading users thin out over time."""
    span_start = np.minimum(signup_age_s, window_s).astype(np.float64)
    span_end = np.zeros(segment.size)
    span_end[segment == SEGMENTS.index("fading")] = 14 * 86_400
    span_end[segment == SEGMENTS.index("dormant")] = 15 * 86_400
    span_end = np.minimum(span_end, span_start * 0.5)
    span_days = (span_start - span_end) / 86_400
    rate = np.asarray(SEGMENT_RATE_PER_DAY)[segment]
    counts = rng.poisson(rate * span_days)
    counts[segment == SEGMENTS.index("silent")] = 0

    owner = np.repeat(np.arange(segment.size), counts)
    u = rng.random(owner.size)
    fading = segment[owner] == SEGMENTS.index("fading")
    u = np.where(fading, np.sqrt(u), u)  # more mass near the start of the span
    age_s = span_end[owner] + (1.0 - u) * (span_start[owner] - span_end[owner])
    created_at = as_of_s - np.maximum(age_s, 1.0).astype(np.int64)
    order = np.lexsort((owner, created_at))
    return owner[order], created_at[order]


def _events(rng, owner: np.ndarray, created_at: np.ndarray, user_ids: list[str]) -> pa.Table:
    """The events table: a type (a few missing), and a small JSON ``properties`` each."""
    n_events = owner.size
    event_type = _choice(rng, n_events, EVENT_TYPES.values())
    null_type = rng.random(n_events) < NULL_EVENT_TYPE_SHARE
    source = _choice(rng, n_events, (0.6, 0.15, 0.15, 0.1))
    duration_bucket = rng.integers(0, 16, n_events)
    property_values = [
        json.dumps({"source": s, "duration_ms": 250 * (b + 1)}) for s in SOURCES for b in range(16)
    ]
    properties = source.astype(np.int32) * 16 + duration_bucket.astype(np.int32)
    return pa.table(
        {
            "id": pa.array(np.arange(1, n_events + 1, dtype=np.int64)),
            "user_id": _dictionary_strings(owner, user_ids),
            "event_type": _dictionary_strings(event_type, list(EVENT_TYPES), mask=null_type),
            "created_at": pa.array(created_at, type=pa.timestamp("s")),
            "properties": _dictionary_strings(properties, property_values),
        }
    )


def _write(out: Path, fmt: str, users: pa.Table, events: pa.Table) -> tuple[Path, Path]:
    """Write both tables to ``out`` in ``fmt``, removing files of the other format."""
    out.mkdir(parents=True, exist_ok=True)
    users_path, events_path = out / f"users.{fmt}", out / f"events.{fmt}"
    stale = "parquet" if fmt == "csv" else "csv"  # one format per folder: readers never mix them
    (out / f"users.{stale}").unlink(missing_ok=True)
    (out / f"events.{stale}").unlink(missing_ok=True)
    if fmt == "csv":
        pacsv.write_csv(users, users_path)
        pacsv.write_csv(events, events_path)
    else:
        pq.write_table(users, users_path, compression="zstd")
        pq.write_table(events, events_path, compression="zstd", row_group_size=1_000_000)
    return users_path, events_path
