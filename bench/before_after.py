"""Compare this checkout with an earlier commit: the same benchmarks, one after the other.

    .venv/bin/python bench/before_after.py --before 36cb93d

Checks the earlier commit out beside this one (``bench/out/before``), sets it up with its own
``make setup``, then runs the data and end-to-end benchmarks there and here, alternating, so
both see the same machine. Saves the ratios in ``bench/out/results-compare.json`` and adds
them to RESULTS.md (``make bench`` keeps them there until the next comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, ROOT, Measurement, load_average, save  # noqa: E402

AREAS = ("data", "e2e")
COMPARED = {  # measurement name -> short label; each must end no more than 10 % worse
    "sandbox run, warm: process wall": "warm `make pipeline` (sandbox run), wall",
    "100,000 users: ratio dbt SQL phase / direct DuckDB": "SQL-phase ratio, 100,000 users",
    "1,000,000 users: ratio dbt SQL phase / direct DuckDB": "SQL-phase ratio, 1,000,000 users",
    "1,000,000 users: dbt build, wall (in-process dbtRunner)": "1,000,000-user build, wall",
}
LIMIT = 1.10


def checkout(rev: str) -> Path:
    """The earlier commit in its own folder, set up with its own Makefile."""
    tree = OUT / "before"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True
        )
    else:
        subprocess.run(["git", "-C", str(tree), "checkout", "--detach", "-q", rev], check=True)
    subprocess.run(["make", "setup"], cwd=tree, check=True)
    (tree / "bench" / "out").mkdir(parents=True, exist_ok=True)
    for saved in OUT.glob("results-*.json"):  # its run_all.py reads the areas it does not run
        if not (tree / "bench" / "out" / saved.name).exists():
            shutil.copy(saved, tree / "bench" / "out" / saved.name)
    return tree


def bench(tree: Path, area: str) -> dict[str, float]:
    """Run one benchmark in ``tree`` and return its measurements by name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDBOX_", "BENCH_"))}
    env["BENCH_OUT"] = str(tree / "bench" / "out") if tree != ROOT else str(OUT)
    python = tree / ".venv" / "bin" / "python"
    print(f"\n### {area} in {tree} (load average {load_average()})", flush=True)
    subprocess.run([str(python), "bench/run_all.py", "--only", area], cwd=tree, env=env, check=True)
    saved = json.loads((Path(env["BENCH_OUT"]) / f"results-{area}.json").read_text())
    return {m["name"]: m["value"] for m in saved["measurements"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the earlier commit (hash or tag)")
    args = parser.parse_args()
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.before],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = checkout(rev)
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    for area in AREAS:
        before |= bench(tree, area)
        after |= bench(ROOT, area)
    rows = []
    for name, label in COMPARED.items():
        ratio = after[name] / before[name]
        rows.append(
            Measurement(
                "compare",
                label,
                ratio,
                "x",
                f"<= {LIMIT}",
                ratio <= LIMIT,
                f"before {before[name]:.3g}, after {after[name]:.3g}",
            )
        )
        print(rows[-1].line())
    save("compare", rows, {"before": rev})
    subprocess.run([sys.executable, "bench/run_all.py", "--only", ""], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
