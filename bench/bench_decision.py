"""Decision-plane benchmark on the offline fake: engine overhead, thread speed-up, batch savings.

Run from the repository root::

    .venv/bin/python bench/bench_decision.py [--users 2000]

Prints rows per second with no API latency (what the engine itself costs: SDK, validation,
group commits to DuckDB), rows per second at 50 ms per request with 1 and 10 workers (the
speed-up the thread pool buys while waiting on the network), and the batch / realtime cost
ratio (the Batches API discount). Each scenario gets its own temporary warehouse.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.decision import prepare_features, run_llm_inference  # noqa: E402
from tests.decision_fixtures import DAY, create_mart  # noqa: E402


def scenario(users: int, *, latency_ms: int, workers: int, mode: str = "realtime"):
    """One fresh warehouse, one run; returns its InferenceSummary."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SANDBOX_WAREHOUSE"] = str(Path(tmp) / "bench.duckdb")
        os.environ["SANDBOX_MOCK_LATENCY_MS"] = str(latency_ms)
        create_mart(users)
        prepare_features(DAY)
        return run_llm_inference(DAY, workers=workers, mode=mode, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    args = parser.parse_args()
    os.environ.pop("SANDBOX_MOCK_FAULTS", None)
    os.environ["SANDBOX_LLM"] = "mock"

    fast = scenario(args.users, latency_ms=0, workers=10)
    slow_users = min(args.users, 400)
    one = scenario(slow_users // 8, latency_ms=50, workers=1)
    ten = scenario(slow_users, latency_ms=50, workers=10)
    batch = scenario(args.users, latency_ms=0, workers=10, mode="batch")

    def rate(s) -> float:
        return s.done / s.wall_s

    print(
        f"engine, no latency, 10 workers : {rate(fast):7.0f} rows/s ({fast.requests / fast.wall_s:.0f} requests/s)"
    )
    print(f"50 ms per request, 1 worker    : {rate(one):7.1f} rows/s")
    print(f"50 ms per request, 10 workers  : {rate(ten):7.1f} rows/s")
    print(f"ratio 10 workers / 1 worker    : {rate(ten) / rate(one):7.1f}x")
    print(f"ratio batch / realtime cost    : {batch.cost_usd / fast.cost_usd:7.2f}")


if __name__ == "__main__":
    main()
