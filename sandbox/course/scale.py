"""Notebook 06: a build's phases, and checks of a projection done by hand (random profiles,
sizes and tiers, the projection module switched off, compared with its own answer)."""

from __future__ import annotations

import random
from dataclasses import replace

from sandbox.course.verdicts import Blank, Miss, call_each, exercise

_PROJECTION = "sandbox.decision.projection"


def build_phases(result) -> dict[str, float]:
    """Split a build's wall time into dbt's SQL phase (first node's start to last node's end,
    from ``run_results.json``) and its fixed start-up (parsing, the graph, artifacts)."""
    import json
    from datetime import datetime

    from sandbox.data import target_dir

    results = json.loads((target_dir() / "run_results.json").read_text())["results"]
    timings = [t for r in results for t in r["timing"]]
    start = min(datetime.fromisoformat(t["started_at"]) for t in timings)
    end = max(datetime.fromisoformat(t["completed_at"]) for t in timings)
    total, sql = result.elapsed_s, (end - start).total_seconds()
    return {"total_s": total, "startup_s": max(0.0, total - sql), "sql_s": sql}


@exercise("06.1")
def check_batch_cost(profile, batch_cost) -> str:
    """Exercise 06.1: ``batch_cost(profile, book, users)`` prices the cheap model in batch mode."""
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.projection import TIERS, project

    if not callable(batch_cost):
        raise Blank("define `batch_cost(profile, book, users)` above: it returns USD.")
    book, rng = load_price_book(), random.Random()
    sizes = (37_000, 480_000, 2_500_000, 9_100_000)
    cases = [(replace(profile, primary_input_tokens=rng.uniform(200, 3_000),
                      primary_output_tokens=rng.uniform(40, 400)), book, rng.choice(sizes))
             for _ in range(5)]  # fmt: skip
    got = call_each(batch_cost, cases, "batch_cost", _PROJECTION)
    for (p, _, users), mine in zip(cases, got, strict=True):
        want = project(p, users, book=book, tier=TIERS["tier 2"], plan="cheap", mode="batch")
        if abs(float(mine) - want.cost_usd) > 0.005 * want.cost_usd:
            if abs(float(mine) - 2 * want.cost_usd) <= 0.01 * want.cost_usd:
                raise Miss(
                    "that is the realtime price: the Batches API bills batch_discount of it."
                )
            raise Miss(f"for {users:,} users your price is off: (input tokens x input price + "
                       "output tokens x output price) per row, per million tokens, x rows x "
                       "batch_discount.")  # fmt: skip
    return f"{len(cases)} random profiles and sizes, each priced right."


@exercise("06.2")
def check_workers(profile, workers_for) -> str:
    """Exercise 06.2: ``workers_for(profile, book, tier, latency_s)`` by Little's law."""
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.projection import RateLimits, Tier, workers_to_saturate

    if not callable(workers_for):
        raise Blank("define `workers_for(profile, book, tier, latency_s)` above.")
    book, rng = load_price_book(), random.Random()
    cases = []
    for k in range(5):  # the first tier binds on input tokens, so requests/min alone cannot pass
        limits = RateLimits(4_000, 50_000, 8e5) if k == 0 else RateLimits(
            rng.choice([50, 1_000, 4_000]), rng.choice([50_000, 400_000, 4e6]),
            rng.choice([10_000, 80_000, 8e5]))  # fmt: skip
        tier = Tier(f"hidden {k}", {"haiku": limits, "sonnet": limits}, 100_000)
        cases.append((profile, book, tier, rng.choice([0.5, 1.0, 2.0, 3.5])))
    got = call_each(workers_for, cases, "workers_for", _PROJECTION)
    for (_, _, tier, latency), mine in zip(cases, got, strict=True):
        want = workers_to_saturate(profile, book=book, tier=tier, latency_s=latency, plan="cheap")
        if abs(int(mine) - want) > 1:
            limits = tier.for_model(book.get(book.primary).id)
            if abs(int(mine) - limits.requests_per_minute / 60 * latency) <= 1:
                raise Miss("that keeps requests/min busy, but a token limit can bind first: "
                           "divide it by tokens per request.")  # fmt: skip
            raise Miss("take the tightest of requests/min, input tokens/min / input tokens per "
                       "request and output tokens/min / output tokens per request; per second, "
                       "times the latency.")  # fmt: skip
    return f"{len(cases)} random tiers and latencies, each staffed right."
