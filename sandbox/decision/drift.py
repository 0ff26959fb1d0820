"""The drift watch: does a date's answers look like the days before it?"""

from __future__ import annotations

import json
import math
import tomllib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sandbox.config import SandboxError, parse_date
from sandbox.decision.prompt import RECOMMENDATION_TYPES
from sandbox.decision.tables import STAGING
from sandbox.warehouse import connect, table_exists

CONFIG_FILE = Path(__file__).with_name("drift.toml")
CONFIDENCE_BUCKETS = tuple(f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10))


@dataclass(frozen=True)
class DriftThresholds:
    """When a shift counts as drift, and how much history a verdict needs."""

    type_mix_psi: float = 0.25
    confidence_psi: float = 0.25
    min_window_days: int = 2
    min_rows: int = 30
    share_floor: float = 0.0001


def load_thresholds(path: Path | str = CONFIG_FILE) -> DriftThresholds:
    """Read ``drift.toml`` (a clear error when it is missing or malformed)."""
    known = DriftThresholds.__dataclass_fields__
    try:
        raw = tomllib.loads(Path(path).read_text())
        if unknown := sorted(set(raw) - set(known)):
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
        return DriftThresholds(**{k: type(getattr(DriftThresholds, k))(v) for k, v in raw.items()})
    except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
        raise SandboxError(
            f"cannot read the drift thresholds {path} ({type(exc).__name__}: {exc}): restore "
            f"it from git or fix it (settings: {', '.join(known)})"
        ) from None


def psi(now: dict[str, float], before: dict[str, float], floor: float = 0.0001) -> float:
    """Population stability index of two share distributions over the same buckets."""
    total = 0.0
    for bucket in set(now) | set(before):
        p = max(now.get(bucket, 0.0), floor)
        q = max(before.get(bucket, 0.0), floor)
        total += (p - q) * math.log(p / q)
    return total


@dataclass
class DriftReport:
    """The verdict for one date: status, the statistics, the thresholds and a message."""

    execution_date: date
    status: str
    rows: int
    window_dates: list[date]
    window_rows: int
    type_mix_psi: float | None
    confidence_psi: float | None
    thresholds: DriftThresholds
    type_mix: dict[str, float] = field(default_factory=dict)
    window_type_mix: dict[str, float] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    window_confidence: dict[str, float] = field(default_factory=dict)
    message: str = ""

    @property
    def drifted(self) -> bool:
        return self.status == "drift"

    def as_record(self) -> dict[str, Any]:
        """Plain values for a table row or a log line (dates as ISO text)."""
        return json.loads(json.dumps(asdict(self), default=str))


def _shares(counts: dict[str, int], buckets: tuple[str, ...]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {b: counts.get(b, 0) / total for b in buckets}


def _window_shares(counts: dict, window: list[date], buckets: tuple[str, ...]) -> dict[str, float]:
    """The mean of the window dates' shares (each date weighs the same)."""
    shares = [_shares(counts[d], buckets) for d in window]
    return {b: sum(s[b] for s in shares) / len(shares) for b in buckets} if shares else {}


def _mover(now: dict[str, float], before: dict[str, float]) -> str:
    bucket = max(now, key=lambda b: abs(now[b] - before.get(b, 0.0)))
    return f"{bucket} {before.get(bucket, 0.0):.0%} -> {now[bucket]:.0%}"


def _histories(con, first: date, last: date) -> tuple[dict, dict]:
    """Answers per date by recommendation type, and by confidence bucket."""
    types: dict[date, Counter] = defaultdict(Counter)
    buckets: dict[date, Counter] = defaultdict(Counter)
    if not table_exists(con, STAGING):
        return types, buckets
    found = con.execute(
        f"""
        select execution_date, recommendation_type,
               least(greatest(cast(floor(confidence_score * 10) as integer), 0), 9) as bucket,
               count(*) as n
        from {STAGING}
        where execution_date between ? and ?
        group by all
        """,
        [first, last],
    ).fetchall()
    for when, kind, bucket, n in found:
        types[when][kind] += n
        buckets[when][CONFIDENCE_BUCKETS[bucket]] += n
    return types, buckets


def _verdict(report: DriftReport, types: dict, buckets: dict, window_rows: int) -> None:
    """Compare the date with its window (PSI of both mixes) and write the verdict."""
    day, window, rows = report.execution_date, report.window_dates, report.rows
    limits = report.thresholds
    report.type_mix = _shares(types[day], RECOMMENDATION_TYPES)
    report.window_type_mix = _window_shares(types, window, RECOMMENDATION_TYPES)
    report.confidence = _shares(buckets[day], CONFIDENCE_BUCKETS)
    report.window_confidence = _window_shares(buckets, window, CONFIDENCE_BUCKETS)
    report.type_mix_psi = psi(report.type_mix, report.window_type_mix, limits.share_floor)
    report.confidence_psi = psi(report.confidence, report.window_confidence, limits.share_floor)
    moved = []
    if report.type_mix_psi > limits.type_mix_psi:
        moved.append(
            f"the recommendation-type mix moved (PSI {report.type_mix_psi:.2f} > "
            f"{limits.type_mix_psi}; {_mover(report.type_mix, report.window_type_mix)})"
        )
    if report.confidence_psi > limits.confidence_psi:
        moved.append(
            f"the confidence distribution moved (PSI {report.confidence_psi:.2f} > "
            f"{limits.confidence_psi}; bucket {_mover(report.confidence, report.window_confidence)})"
        )
    against = (
        f"the trailing {len(window)} date(s) {window[0]}..{window[-1]} ({window_rows:,} answers)"
    )
    if moved:
        report.status = "drift"
        report.message = (
            f"{day}: drift against {against}: {' and '.join(moved)}. The {rows:,} answers are "
            "kept but should not be trusted yet: check the date's inputs first (a stale or "
            "broken data day turns most users into churn_risk), then the prompt_version and "
            "model of its rows against the days before."
        )
    else:
        report.status = "ok"
        report.message = (
            f"{day}: no drift against {against}: type-mix PSI {report.type_mix_psi:.3f} "
            f"(threshold {limits.type_mix_psi}), confidence PSI {report.confidence_psi:.3f} "
            f"(threshold {limits.confidence_psi}), {rows:,} answers."
        )


def check_drift(
    execution_date: date | str, window_days: int = 7, *, thresholds: DriftThresholds | None = None
) -> DriftReport:
    """Compare the date's type mix and confidence buckets with the trailing ``window_days``
    dates by PSI: ``drift`` above a threshold, or ``insufficient_history``."""
    day = parse_date(execution_date)
    if window_days < 1:
        raise SandboxError(f"window_days must be at least 1, got {window_days}")
    limits = thresholds or load_thresholds()
    first = day - timedelta(days=window_days)
    with connect(read_only=True) as con:
        types, buckets = _histories(con, first, day)
    window = sorted(d for d in types if d < day)
    rows = sum(types.get(day, {}).values())
    window_rows = sum(sum(types[d].values()) for d in window)
    report = DriftReport(day, "insufficient_history", rows, window, window_rows, None, None, limits)
    span = f"{window_days} day{'s' if window_days != 1 else ''}"
    if rows < limits.min_rows or len(window) < limits.min_window_days:
        report.message = (
            f"{day}: no drift verdict: {rows:,} answers on the date (need {limits.min_rows}) and "
            f"{len(window)} earlier date(s) with answers in the trailing {span} (need "
            f"{limits.min_window_days}). Nothing is wrong; the watch starts once there is history."
        )
        return report
    _verdict(report, types, buckets, window_rows)
    return report
