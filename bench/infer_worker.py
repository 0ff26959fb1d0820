"""Child process of the memory benchmark: ``infer`` for one date and mode, printing JSON.

The same call ``sandbox infer --date D --mode M`` makes, except that batch mode waits up to an
hour for its batches: the CLI's offline deadline (2 minutes from the start of the run) is
shorter than submitting a million requests takes here, and would leave the batches for the
next run to collect (correct, but then one run is not the whole job).
"""

from __future__ import annotations

import json
import sys
import time

from sandbox.decision import infer

if __name__ == "__main__":
    mode, day = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    summary = infer(day, mode=mode, wait_s=3600, progress=False)
    print(
        json.dumps(
            {
                "status": summary.status,
                "done": summary.done,
                "failed": summary.failed,
                "requests": summary.requests,
                "escalated": summary.escalated,
                "cost_usd": summary.cost_usd,
                "wall_s": time.perf_counter() - started,
            }
        )
    )
