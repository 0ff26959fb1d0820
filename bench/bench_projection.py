"""Cost and time of 1,000,000 users, projected from the ledger of a sample run.

Run from the repository root::

    .venv/bin/python bench/bench_projection.py [--quick] [--tier "tier 2"] [--latency-s 2]

A sample run (2,000 rows of the 100k-user warehouse ``bench_data.py`` built, else the shipped
500 users; ``--quick``: 200 synthetic rows) goes through the real engine on the fake; its
``decision.llm_calls`` rows are condensed into tokens per request and the escalation share
(:func:`sandbox.decision.projection.profile_ledger`), then priced and timed for 1M users:
realtime vs batch, Haiku vs Sonnet vs escalation, on an API tier's rate limits (an input:
pass your own), with rate-limit-aware concurrency (enough workers to keep the tightest
limit busy at the given latency, and no more).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import AS_OF, OUT, Measurement, report, save  # noqa: E402

from sandbox.decision import projection as pj  # noqa: E402
from sandbox.decision.pricing import load_price_book  # noqa: E402

AREA = "Projection"
USERS = 1_000_000


def sample_ledger(rows: int, quick: bool):
    """Run the engine on a sample and return its ``decision.llm_calls`` rows (a DataFrame)."""
    from sandbox.config import environment
    from sandbox.decision import prepare_features, run_llm_inference
    from sandbox.warehouse import query_df

    with tempfile.TemporaryDirectory(prefix="bench-projection-") as tmp:
        path = Path(tmp) / "sandbox.duckdb"
        with environment({"SANDBOX_WAREHOUSE": str(path), "SANDBOX_MOCK_LATENCY_MS": "0"}):
            source = OUT / "wh-100k" / "sandbox.duckdb"
            if quick:
                sys.path.insert(0, str(Path(__file__).resolve().parent))
                from bench_decision import create_mart

                create_mart(rows)
                where = f"{rows} synthetic rows"
            elif source.exists():
                shutil.copyfile(source, path)
                where = f"{rows:,} of the 100,000 generated users"
            else:
                from sandbox.data import build

                with environment({"SANDBOX_RAW_DIR": ""}):  # the shipped data
                    build(AS_OF)
                where = "the shipped 500 users"
            day = "2026-11-01"
            prepare_features(day)
            summary = run_llm_inference(day, batch_size=rows, progress=False)
            calls = query_df("select * from decision.llm_calls")
    return calls, where, summary


def run(quick: bool = False, tier_name: str = "tier 2", latency_s: float = 2.0):
    """The sample run, the profile, and the 1M projection as measurements plus a notes table."""
    calls, where, summary = sample_ledger(200 if quick else 2_000, quick)
    profile = pj.profile_ledger(calls)
    book = load_price_book()
    tier = pj.TIERS[tier_name]
    workers = pj.workers_to_saturate(
        profile, book=book, tier=tier, latency_s=latency_s, plan="escalation"
    )
    table = pj.projection_table(
        profile, USERS, book=book, tier=tier, workers=workers, latency_s=latency_s
    )
    found = [
        Measurement(AREA, "sample: rows / requests", profile.rows, "rows",
                    note=f"{where}; {profile.requests:,} requests, ${summary.cost_usd:.4f}"),
        Measurement(AREA, "sample: input tokens per primary request", profile.primary_input_tokens, "tokens"),
        Measurement(AREA, "sample: output tokens per primary request", profile.primary_output_tokens, "tokens"),
        Measurement(AREA, "sample: rows escalated to the capable model", profile.escalation_share * 100, "%"),
    ]  # fmt: skip
    for row in table.itertuples():
        found.append(
            Measurement(
                AREA, f"1M users, {row.plan}, {row.mode}: cost", row.cost_usd, "USD",
                note=f"{row.hours:,.1f} h expected ({row.bound})"
                + (f"; up to {row.max_hours:,.0f} h" if row.mode == "batch" else ""),
            )
        )  # fmt: skip
    sweep = []
    for name, other in pj.TIERS.items():
        need = pj.workers_to_saturate(
            profile, book=book, tier=other, latency_s=latency_s, plan="escalation"
        )
        p = pj.project(
            profile,
            USERS,
            book=book,
            tier=other,
            plan="escalation",
            workers=need,
            latency_s=latency_s,
        )
        sweep.append(f"| {name} | {need:,} | {p.hours:,.1f} | {p.bound} |")
        found.append(Measurement(AREA, f"1M users, escalation, realtime on {name}: hours", p.hours, "h",
                                 note=f"{need:,} workers at {latency_s:g} s/request; bound: {p.bound}"))  # fmt: skip
    prefix = pj.shared_prefix_tokens()
    cache = pj.cache_report(book, prefix)
    cache_lines = [
        f"- {r.model}: shared prefix ~{r.shared_prefix_tokens:,} tokens, caches from {r.min_cacheable_tokens:,}: "
        f"{'applies' if r.caching_applies else 'does not apply'} ({r.why})"
        for r in cache.itertuples()
    ]
    notes = "\n".join(
        [
            f"Sample: {where} through the engine on the fake (tokens counted like the API: characters / 4).",
            f"Rate limits: the illustrative `{tier_name}` of `sandbox.decision.projection.TIERS` "
            f"(pass your Console's numbers as a `Tier`), {workers:,} workers (enough to keep the tightest "
            f"limit busy at {latency_s:g} s per request: `workers_to_saturate`).",
            "",
            "| plan | mode | requests | cost (USD) | expected hours | bound |",
            "|---|---|---:|---:|---:|---|",
            *[
                f"| {r.plan} | {r.mode} | {r.requests:,} | {r.cost_usd:,.2f} | {r.hours:,.1f}"
                + (f" (≤ {r.max_hours:,.0f})" if r.mode == "batch" else "")
                + f" | {r.bound} |"
                for r in table.itertuples()
            ],
            "",
            "Realtime, escalation plan, per tier (rate-limit-aware workers):",
            "",
            "| tier | workers | hours | bound |",
            "|---|---:|---:|---|",
            *sweep,
            "",
            "Where prompt caching does not apply (so no estimate assumes a cache discount):",
            "",
            *cache_lines,
            "- the per-user part of every prompt (the summary) is different for every row, and output "
            "tokens are never cached, so even a cacheable prefix would only discount its own share.",
        ]
    )
    if not quick:
        save("projection", found, {"notes": notes})
    return found, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 synthetic rows")
    parser.add_argument("--tier", default="tier 2", choices=list(pj.TIERS))
    parser.add_argument("--latency-s", type=float, default=2.0, help="API seconds per request")
    args = parser.parse_args()
    found, notes = run(quick=args.quick, tier_name=args.tier, latency_s=args.latency_s)
    report(AREA, found)
    print()
    print(notes)


if __name__ == "__main__":
    main()
