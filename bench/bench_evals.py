"""Evaluations and drift: the offline eval of 100 golden cases (cold and warm) and the drift
check over a 7-day window at 1M answers a day.

    .venv/bin/python bench/bench_evals.py            # 100 cases; 1M answers x 8 dates
    .venv/bin/python bench/bench_evals.py --quick    # smoke: shipped cases; 10,000 answers x 8

*First ever* builds the golden summaries with dbt from nothing (a fresh clone); *cold*
builds them again as after a change to a model or a golden file (dbt reuses its parse of the
project); *warm* reads them from the cache. The 100 cases are
the 76 shipped ones plus 24 copies under new ids, so the numbers are for 100 requests.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, Measurement, report, save  # noqa: E402

from sandbox.config import environment  # noqa: E402

AREA = "Evaluations and drift"
DAY = date(2026, 11, 1)
WINDOW_DAYS = 7


def golden_of(size: int, folder: Path) -> Path:
    """The shipped golden set grown to ``size`` cases by copying cases under new ids."""
    from sandbox.evals.golden import GOLDEN_DIR

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tables = {}
    for name in ("users", "events", "labels"):
        with (GOLDEN_DIR / f"{name}.csv").open(newline="") as handle:
            tables[name] = list(csv.DictReader(handle))
    labels = tables["labels"]
    extra = [dict(row, user_id=f"x{i:03d}") for i, row in enumerate(labels[: size - len(labels)])]
    source = {row["user_id"]: row["user_id"] for row in labels}
    source.update({row["user_id"]: labels[i]["user_id"] for i, row in enumerate(extra)})
    users = {row["id"]: row for row in tables["users"]}
    new_users = [dict(users[source[new]], id=new) for new in source]
    events = list(tables["events"])
    next_id = max(int(e["id"]) for e in events) + 1
    for row in extra:
        for event in [e for e in tables["events"] if e["user_id"] == source[row["user_id"]]]:
            events.append(dict(event, id=str(next_id), user_id=row["user_id"]))
            next_id += 1
    for name, rows in (("users", new_users), ("events", events), ("labels", labels + extra)):
        with (folder / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return folder


def eval_times(cases: int | None, scratch: Path, quick: bool = False) -> list[Measurement]:
    """Seconds for one offline evaluation of ``cases`` cases (None: the shipped ones), first
    ever, cold (dbt) and warm (cached); ``quick``: first ever and one warm run only."""
    from sandbox.evals.golden import GOLDEN_DIR, load_golden
    from sandbox.evals.runner import run_eval

    cases = cases or len(load_golden(GOLDEN_DIR).cases)
    folder = golden_of(cases, scratch / "golden")
    os.environ["SANDBOX_EVAL_CACHE"] = str(scratch / "cache")
    os.environ["SANDBOX_WAREHOUSE"] = str(scratch / "wh" / "sandbox.duckdb")
    shutil.rmtree(scratch / "cache", ignore_errors=True)
    started = time.perf_counter()
    first = run_eval(llm="mock", golden=load_golden(folder))
    first_s = time.perf_counter() - started
    assert first.scores.cases == cases and not first.golden.cached
    if quick:
        started = time.perf_counter()
        assert run_eval(llm="mock", golden=load_golden(folder)).golden.cached
        warm_s = time.perf_counter() - started
        return [
            Measurement(AREA, f"offline eval, {cases} cases, first ever (dbt parses and builds)",
                        first_s, "s", note=f"dbt {first.golden.build_s:.1f} s"),
            Measurement(AREA, f"offline eval, {cases} cases, warm (summaries cached)", warm_s, "s"),
        ]  # fmt: skip
    for stale in (scratch / "cache").glob("golden-*.json"):  # as after a change to a model
        stale.unlink()
    started = time.perf_counter()
    cold = run_eval(llm="mock", golden=load_golden(folder))
    cold_s = time.perf_counter() - started
    assert not cold.golden.cached
    warm = []
    for _ in range(3):
        started = time.perf_counter()
        run = run_eval(llm="mock", golden=load_golden(folder))
        warm.append(time.perf_counter() - started)
        assert run.golden.cached
    warm_s = statistics.median(warm)
    return [
        Measurement(AREA, f"offline eval, {cases} cases, first ever (dbt parses and builds)",
                    first_s, "s", note=f"dbt {first.golden.build_s:.1f} s"),
        Measurement(AREA, f"offline eval, {cases} cases, cold (a model changed: dbt builds)",
                    cold_s, "s", "<= 10 s", cold_s <= 10, note=f"dbt {cold.golden.build_s:.1f} s"),
        Measurement(AREA, f"offline eval, {cases} cases, warm (summaries cached)", warm_s, "s",
                    "<= 10 s", warm_s <= 10, note="median of 3"),
    ]  # fmt: skip


def drift_time(rows_per_day: int, scratch: Path) -> list[Measurement]:
    """Seconds for :func:`check_drift` over ``WINDOW_DAYS`` + 1 dates of ``rows_per_day``."""
    from sandbox.decision.drift import check_drift
    from sandbox.decision.tables import ensure_tables
    from sandbox.warehouse import connect

    path = scratch / f"drift-{rows_per_day}" / "sandbox.duckdb"
    os.environ["SANDBOX_WAREHOUSE"] = str(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with connect(path=path) as con:
            ensure_tables(con, "decision.recommendations_staging")
            for back in range(WINDOW_DAYS, -1, -1):
                con.execute(
                    """
                    insert into decision.recommendations_staging (execution_date, user_id,
                        recommendation_type, recommendation_text, confidence_score, reasoning,
                        model, prompt_version, mode, escalated, input_tokens, output_tokens,
                        cost_usd, input_sha, run_id, created_at)
                    select ?, 'u' || i,
                           ['feature_discovery', 'churn_risk', 're_engagement', 'upgrade_prompt'][1 + i % 4],
                           'text', 0.5 + (i % 5) / 10, 'why', 'm', 'pv', 'realtime', false,
                           500, 60, 0.0008, 'sha', 'run', now()::timestamp
                    from range(?) t(i)
                    """,
                    [DAY - timedelta(days=back), rows_per_day],
                )
    times = []
    for _ in range(3):
        started = time.perf_counter()
        result = check_drift(DAY, WINDOW_DAYS)
        times.append(time.perf_counter() - started)
    assert result.status == "ok", result.message
    label = f"{rows_per_day:,}" if rows_per_day < 1_000_000 else f"{rows_per_day // 1_000_000}M"
    return [
        Measurement(AREA, f"drift check, {label} answers/day, 7-day window", statistics.median(times),
                    "s", "<= 1 s" if rows_per_day >= 1_000_000 else "",
                    statistics.median(times) <= 1 if rows_per_day >= 1_000_000 else None,
                    note=f"{(WINDOW_DAYS + 1) * rows_per_day:,} rows scanned; median of 3"),
    ]  # fmt: skip


def run(quick: bool = False, out: Path | None = None) -> list[Measurement]:
    """Every measurement of this benchmark (a full run keeps them for ``run_all.py --only``)."""
    scratch = (out or OUT) / "evals"
    scratch.mkdir(parents=True, exist_ok=True)
    keys = ("SANDBOX_EVAL_CACHE", "SANDBOX_WAREHOUSE")  # the measurements repoint both
    with environment({k: os.environ.get(k, "") for k in keys}):  # ...and this puts them back
        found = eval_times(None if quick else 100, scratch, quick=quick)
        found += drift_time(10_000 if quick else 1_000_000, scratch)
    if quick:
        for m in found:
            m.target, m.passed = "", None
    else:
        save("evals", found)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 answers a day for drift")
    report(AREA, run(quick=parser.parse_args().quick))


if __name__ == "__main__":
    main()
