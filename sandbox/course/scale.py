"""Notebook 06's helpers and checks: a build's phases, and a projection done by hand.

The checks call the learner's function on random profiles, sizes and tiers, with
:mod:`sandbox.decision.projection` switched off, and compare with the projection's own answer.
"""

from __future__ import annotations

import random
from dataclasses import replace

from sandbox.course.verdicts import Verdict, exercise, helpers_off, require, used_message

_PROJECTION = "sandbox.decision.projection"


def build_phases(result) -> dict[str, float]:
    """Split a build's wall time into dbt's fixed start-up and its SQL phase.

    The SQL phase runs from the first node's start to the last node's end in dbt's
    ``run_results.json``; everything else (parsing, the graph, artifacts) is start-up.
    """
    import json
    from datetime import datetime

    from sandbox.data import target_dir

    results = json.loads((target_dir() / "run_results.json").read_text())["results"]
    stamps = [
        (
            datetime.fromisoformat(t["started_at"].rstrip("Z")),
            datetime.fromisoformat(t["completed_at"].rstrip("Z")),
        )
        for r in results
        for t in r["timing"]
    ]
    sql = (max(end for _, end in stamps) - min(start for start, _ in stamps)).total_seconds()
    return {
        "total_s": result.elapsed_s,
        "startup_s": max(0.0, result.elapsed_s - sql),
        "sql_s": sql,
    }


def _profiles(profile, rng: random.Random, n: int = 5):
    """``n`` variations of a ledger profile: other token counts, other sizes."""
    for _ in range(n):
        yield (
            replace(
                profile,
                primary_input_tokens=rng.uniform(200, 3_000),
                primary_output_tokens=rng.uniform(40, 400),
            ),
            rng.choice([37_000, 480_000, 2_500_000, 9_100_000]),
        )


def _called(fn, cases) -> tuple[list, list[str]]:
    with helpers_off(_PROJECTION) as used:
        got = [fn(*case) for case in cases]
    return got, used


@exercise("06.1")
def check_batch_cost(profile, batch_cost) -> Verdict:
    """Exercise 06.1: ``batch_cost(profile, book, users)`` prices the cheap model in batch mode."""
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.projection import TIERS, project

    if not callable(batch_cost):
        require(None, "define `batch_cost(profile, book, users)` above: it returns USD.")
    book = load_price_book()
    cases = [(p, book, users) for p, users in _profiles(profile, random.Random())]
    try:
        got, used = _called(batch_cost, cases)
    except Exception as exc:  # the learner's error is an answer to explain
        return Verdict(False, f"batch_cost raised {type(exc).__name__}: {exc}")
    if used:
        return Verdict(False, used_message(used))
    if all(x is None for x in got):
        require(None, "`batch_cost` returns None: write its body, then run this cell again.")
    for (p, _, users), mine in zip(cases, got, strict=True):
        want = project(p, users, book=book, tier=TIERS["tier 2"], plan="cheap", mode="batch")
        if abs(float(mine) - want.cost_usd) > 0.005 * want.cost_usd:
            if abs(float(mine) - 2 * want.cost_usd) <= 0.01 * want.cost_usd:
                return Verdict(False, "that is the realtime price: the Batches API bills "
                               "batch_discount of it.")  # fmt: skip
            return Verdict(False, f"for {users:,} users your price is off: (input tokens x "
                           "input price + output tokens x output price) per row, per million "
                           "tokens, x rows x batch_discount.")  # fmt: skip
    return Verdict(True, f"{len(cases)} random profiles and sizes, each priced right.")


def _tiers(rng: random.Random, n: int = 5):
    from sandbox.decision.projection import RateLimits, Tier

    for k in range(n):
        limits = RateLimits(rng.choice([50, 1_000, 4_000]), rng.choice([50_000, 400_000, 4e6]),
                            rng.choice([10_000, 80_000, 8e5]))  # fmt: skip
        yield (
            Tier(f"hidden {k}", {"haiku": limits, "sonnet": limits}, 100_000),
            rng.choice([0.5, 1.0, 2.0, 3.5]),
        )


@exercise("06.2")
def check_workers(profile, workers_for) -> Verdict:
    """Exercise 06.2: ``workers_for(profile, book, tier, latency_s)`` by Little's law."""
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.projection import workers_to_saturate

    if not callable(workers_for):
        require(None, "define `workers_for(profile, book, tier, latency_s)` above.")
    book, rng = load_price_book(), random.Random()
    cases = [(profile, book, tier, latency) for tier, latency in _tiers(rng)]
    try:
        got, used = _called(workers_for, cases)
    except Exception as exc:  # the learner's error is an answer to explain
        return Verdict(False, f"workers_for raised {type(exc).__name__}: {exc}")
    if used:
        return Verdict(False, used_message(used))
    if all(x is None for x in got):
        require(None, "`workers_for` returns None: write its body, then run this cell again.")
    for (_, _, tier, latency), mine in zip(cases, got, strict=True):
        want = workers_to_saturate(profile, book=book, tier=tier, latency_s=latency, plan="cheap")
        if abs(int(mine) - want) > 1:
            limits = tier.for_model(book.get(book.primary).id)
            if abs(int(mine) - limits.requests_per_minute / 60 * latency) <= 1:
                return Verdict(False, "that keeps requests/min busy, but a token limit can bind "
                               "first: divide it by tokens per request.")  # fmt: skip
            return Verdict(False, "take the tightest of requests/min, input tokens/min / input "
                           "tokens per request and output tokens/min / output tokens per "
                           "request; per second, times the latency.")  # fmt: skip
    return Verdict(True, f"{len(cases)} random tiers and latencies, each staffed right.")
