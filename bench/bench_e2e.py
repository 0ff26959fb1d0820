"""End-to-end benchmark: the whole pipeline's wall time, split by plane and Airflow overhead.

Run from the repository root::

    .venv/bin/python bench/bench_e2e.py            # with Airflow (about a minute and a half)
    .venv/bin/python bench/bench_e2e.py --quick    # the planes only, no Airflow (seconds)

On the shipped data, in a scratch warehouse and Airflow home under ``bench/out/e2e``:

1. a first ``sandbox run`` (another date) warms the environment: it migrates Airflow's
   metadata DB and lets dbt cache its parse, as on a machine that has run the course before;
2. ``run_pipeline`` for 2026-11-01 in a fresh process (what ``sandbox run --date`` does):
   both DAGs under ``dag.test()``. Task durations give the data plane (``dbt_run``) and the
   decision plane (``prepare_features`` + ``run_llm_inference`` + ``write_results``);
   the rest of the process's wall time is Airflow's (imports, DAG parsing, the sensor,
   scheduling each task) plus Python's start-up;
3. the same two planes called directly (``build`` then ``infer``) in another fresh process,
   for the same date in a fresh warehouse: what the pipeline costs without an orchestrator.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import AS_OF, OUT, Measurement, last_json, report, run_child, save  # noqa: E402

AREA = "End to end"
WARM_UP_DATE = "2026-10-31"
DECISION_TASKS = ("prepare_features", "run_llm_inference", "write_results")


def worker_airflow(day: str) -> None:
    """Child: both DAGs for ``day`` through run_pipeline; print task durations as JSON."""
    started = time.perf_counter()
    from sandbox.control import run_pipeline

    report = run_pipeline([day])[0]
    wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "ok": report.ok,
                "wall_s": wall,
                "tasks": {t.task_id: t.duration_s or 0.0 for t in report.tasks},
                "states": {t.task_id: t.state for t in report.tasks},
                "results": report.results,
            },
            default=str,
        )
    )


def worker_direct(day: str) -> None:
    """Child: the data plane then the decision plane, called directly; print timings as JSON."""
    started = time.perf_counter()
    from sandbox.data import build
    from sandbox.decision import infer

    t0 = time.perf_counter()
    built = build(day)
    t1 = time.perf_counter()
    summary = infer(day, progress=False)
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "wall_s": t2 - started,
                "import_s": t0 - started,
                "build_s": t1 - t0,
                "dbt_elapsed_s": built.elapsed_s,
                "infer_s": t2 - t1,
                "rows": summary.done,
                "requests": summary.requests,
                "cost_usd": summary.cost_usd,
            }
        )
    )


def _env(folder: Path, raw: Path | None = None) -> dict[str, str]:
    return {
        "SANDBOX_WAREHOUSE": str(folder / "sandbox.duckdb"),
        "SANDBOX_AIRFLOW_HOME": str(folder / "airflow"),
        "SANDBOX_RAW_DIR": str(raw or ""),
        "SANDBOX_DBT_PROJECT_DIR": "",
        "SANDBOX_LLM": "mock",
        "SANDBOX_MOCK_LATENCY_MS": "",
        "SANDBOX_MOCK_FAULTS": "",
    }


def _child(
    mode: str, folder: Path, day: str = AS_OF, raw: Path | None = None
) -> tuple[dict, float, float]:
    child = run_child([sys.executable, __file__, f"--worker-{mode}", day], env=_env(folder, raw))
    if child.returncode != 0:
        raise RuntimeError(
            f"the {mode} run failed:\n{child.stdout[-2000:]}\n{child.stderr[-3000:]}"
        )
    return last_json(child.stdout), child.wall_s, child.peak_rss_gib


def _new_home_s(folder: Path) -> tuple[float, float]:
    """Seconds to give a new Airflow home its metadata DB: ``airflow db migrate``, then a copy of
    the migrated template the sandbox caches (the warm-up run left one)."""
    from sandbox.control.airflow_env import airflow_environ, migrate_home

    migrated, copied = folder / "home-migrated", folder / "home-copied"
    for home in (migrated, copied):
        shutil.rmtree(home, ignore_errors=True)
    (migrated / "logs").mkdir(parents=True)
    env = {**os.environ, **airflow_environ(migrated)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    migrate_s = time.perf_counter() - started
    started = time.perf_counter()
    migrate_home(copied)
    return migrate_s, time.perf_counter() - started


def run(
    quick: bool = False, out: Path | None = None, reuse: tuple[Path, Path] | None = None
) -> list[Measurement]:
    """Planes directly (always) and the Airflow pipeline (not in quick mode).

    ``reuse`` = (warehouse folder, raw folder) of an earlier build: the smoke run builds
    there again, so dbt's parse cache makes it quicker.
    """
    out = out or OUT
    found: list[Measurement] = []
    folder, raw = reuse if reuse else (out / "e2e-direct", None)
    if not reuse:
        shutil.rmtree(folder, ignore_errors=True)  # a fresh warehouse: every row to do
    direct, direct_wall, direct_rss = _child("direct", folder, raw=raw)
    found += [
        Measurement(AREA, "planes called directly: process wall", direct_wall, "s",
                    note=f"{direct['rows']:,} users, {direct['requests']:,} LLM requests on the fake; peak {direct_rss:.2f} GiB"),
        Measurement(AREA, "planes directly: data plane (build, incl. dbt start-up)", direct["build_s"], "s"),
        Measurement(AREA, "planes directly: decision plane (infer)", direct["infer_s"], "s"),
        Measurement(AREA, "planes directly: Python start-up + imports", direct_wall - direct["build_s"] - direct["infer_s"], "s"),
    ]  # fmt: skip
    if quick:
        found.append(Measurement(AREA, "Airflow run: skipped in --quick", float("nan"), ""))
        return found
    folder = out / "e2e"
    shutil.rmtree(folder, ignore_errors=True)
    _, warm_up_wall, _ = _child("airflow", folder, WARM_UP_DATE)
    data, wall, rss = _child("airflow", folder)
    if not data["ok"]:
        raise RuntimeError(f"the pipeline did not succeed: {data['states']}")
    tasks = data["tasks"]
    data_plane = tasks.get("dbt_run", 0.0)
    decision_plane = sum(tasks.get(t, 0.0) for t in DECISION_TASKS)
    airflow = data["wall_s"] - data_plane - decision_plane
    python = wall - data["wall_s"]
    migrate_s, copy_s = _new_home_s(folder)
    saved = migrate_s - copy_s
    found += [
        Measurement(AREA, "first sandbox run (a new Airflow home), warm-up", warm_up_wall, "s", note=WARM_UP_DATE),
        Measurement(AREA, "sandbox run, warm: process wall", wall, "s", note=f"{AS_OF}; peak {rss:.2f} GiB"),
        Measurement(AREA, "  data plane: dbt_run task", data_plane, "s", note=f"{data_plane / wall:.0%} of the wall"),
        Measurement(AREA, "  decision plane: prepare + infer + write tasks", decision_plane, "s", note=f"{decision_plane / wall:.0%}"),
        Measurement(AREA, "  Airflow: the rest of run_pipeline", airflow, "s",
                    note=f"{airflow / wall:.0%}: importing Airflow, parsing the DAGs, the sensor "
                    f"({tasks.get('wait_for_dbt_completion', 0.0):.1f} s), scheduling tasks, XComs, metadata DB"),
        Measurement(AREA, "  Python start-up and imports", python, "s", note=f"{python / wall:.0%}"),
        Measurement(AREA, "Airflow pipeline / planes called directly", wall / direct_wall, "x",
                    note=f"Airflow adds {wall - direct_wall:.1f} s to {direct_wall:.1f} s"),
        Measurement(AREA, "new Airflow home: airflow db migrate", migrate_s, "s"),
        Measurement(AREA, "new Airflow home: copy of the cached migrated DB", copy_s, "s"),
        Measurement(AREA, "new Airflow home: share of its first sandbox run the copy saves",
                    saved / (wall + saved) * 100, "%",
                    note=f"{saved:.1f} s of {wall + saved:.1f} s; every notebook that runs Airflow starts a new home"),
    ]  # fmt: skip
    save("e2e", found, {"airflow": data, "direct": direct})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the planes only (no Airflow)")
    parser.add_argument("--worker-airflow", metavar="DATE", help=argparse.SUPPRESS)
    parser.add_argument("--worker-direct", metavar="DATE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for key in (
        "SANDBOX_RAW_DIR",
        "SANDBOX_DBT_PROJECT_DIR",
        "SANDBOX_MOCK_LATENCY_MS",
        "SANDBOX_MOCK_FAULTS",
    ):
        if not os.environ.get(key):
            os.environ.pop(key, None)
    if args.worker_airflow:
        worker_airflow(args.worker_airflow)
    elif args.worker_direct:
        worker_direct(args.worker_direct)
    elif args.quick:
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as scratch:
            report(AREA, run(quick=True, out=Path(scratch)))
    else:
        report(AREA, run())


if __name__ == "__main__":
    main()
