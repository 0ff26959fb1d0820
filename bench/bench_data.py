"""Data-plane benchmark: `dbt build` against the same SQL run directly in DuckDB.

Run from the repository root::

    .venv/bin/python bench/bench_data.py            # 100k and 1M users (a few minutes)
    .venv/bin/python bench/bench_data.py --quick    # 2k users (seconds)

For each size it generates the raw files once (``bench/out/raw-<n>``, deterministic, reused),
then, in one child process per size:

1. ``sandbox.data.build`` (the daily ``dbt build``: models, contracts and data tests) into
   a fresh warehouse, with the process's peak memory right after it, before step 2
   (``VmHWM``: see ``common.vm_hwm_gib``);
2. the statements dbt wrote to its target folder (``<warehouse>/dbt_target/run/``: each
   model's DDL including the contract, each data test's query) executed one after another
   on a single DuckDB connection, into a second fresh file, in the order dbt finished them.

At 100k users it also measures the build with ``unit_tests=True`` (``sandbox build
--unit-tests``, what CI runs), for reference.

dbt's time splits into its fixed start-up (parse, graph, connection; everything outside the
first-node-to-last-node span of ``run_results.json``) and its SQL phase (that span: the
statements plus dbt's per-node work). The ratio SQL phase / direct DuckDB is what dbt adds
per node. ``--proposed`` (on by default in the full run) also builds the 1M data with the
alternative in ``bench/proposed/`` (measured, not adopted: see the notes it prints) applied to
a copy of ``dbt_project/``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import AS_OF, OUT, ROOT, Measurement, last_json, report, run_child, save, vm_hwm_gib  # noqa: E402

AREA = "Data plane"
SQL_RATIO_TARGET = 1.5
BUILD_1M_TARGET_S = 90.0
MEMORY_TARGET_GIB = 4.0
PROPOSED = Path(__file__).resolve().parent / "proposed"
AUDIT_CHECKS = ("fresh_as_of_", "volume_as_of_", "has_rows_dim_users", "has_rows_fct_")
"""The checks write-audit-publish added: freshness, completeness, non-empty marts."""
REPEATS = {100_000: 3}
"""Cold builds per size (the median ratio is reported): a 100k build's SQL takes ~1.4 s, so
a few hundred milliseconds of noise on a shared machine move its ratio by 0.1-0.2."""


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _node_path(node: dict, target: Path) -> Path:
    if node.get("build_path"):
        return Path(node["build_path"])
    return next((target / "run").rglob(f"{node['name']}.sql"))  # unit tests have no build_path


def replay(target: Path, database: Path) -> dict:
    """Run the statements of dbt's last build (``target/run``) directly on one connection.

    Models go in as dbt wrote them (``create ... <name>__dbt_tmp``) and are renamed into
    place, as dbt does; tests are plain queries. Returns seconds per node and the total.
    """
    import duckdb

    results = json.loads((target / "run_results.json").read_text())["results"]
    manifest = json.loads((target / "manifest.json").read_text())
    nodes = {**manifest["nodes"], **manifest.get("unit_tests", {})}
    database.parent.mkdir(parents=True, exist_ok=True)
    database.unlink(missing_ok=True)
    per_node: dict[str, float] = {}
    con = duckdb.connect(str(database))
    try:
        schemas = {n["schema"] for n in nodes.values() if n["resource_type"] == "model"}
        for schema in sorted(schemas):
            con.execute(f'create schema if not exists "{schema}"')
        started = time.perf_counter()
        for result in results:  # completion order: every node after its parents
            node = nodes.get(result["unique_id"])
            if node is None or node["resource_type"] not in ("model", "test", "unit_test"):
                continue
            sql = _node_path(node, target).read_text()
            t0 = time.perf_counter()
            con.execute(sql)
            if node["resource_type"] == "model":
                kind = "view" if node["config"]["materialized"] == "view" else "table"
                name = f'"{node["schema"]}"."{node["alias"]}"'
                con.execute(f"drop {kind} if exists {name}")
                con.execute(f'alter {kind} {name[:-1]}__dbt_tmp" rename to "{node["alias"]}"')
            else:
                con.fetchall()
            per_node[node["name"]] = time.perf_counter() - t0
        total = time.perf_counter() - started
    finally:
        con.close()
    return {"total_s": total, "per_node": per_node}


def worker(args: argparse.Namespace) -> None:
    """Child process: build, measure memory, replay; print one JSON line."""
    from sandbox.course import build_phases
    from sandbox.data import build, target_dir

    cpu0 = _cpu_s()
    result = build(AS_OF, unit_tests=args.unit_tests)
    build_cpu = _cpu_s() - cpu0
    peak = vm_hwm_gib() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    target = target_dir()
    phases = build_phases(result)
    direct = {"total_s": float("nan"), "per_node": {}}
    if not args.no_replay:
        direct = replay(target, Path(args.direct_db))
    slowest = sorted(((n.seconds, n.name) for n in result.nodes), reverse=True)[:6]
    print(
        json.dumps(
            {
                "elapsed_s": result.elapsed_s,
                "publish_s": result.publish_s,
                "audit_s": sum(
                    n.seconds for n in result.nodes if n.name.startswith(AUDIT_CHECKS)
                ),
                "node_sum_s": result.sql_s,
                "build_cpu_s": build_cpu,
                "peak_rss_gib": peak,
                "rows": result.rows,
                "models": result.models,
                "data_tests": result.data_tests,
                "unit_tests": result.unit_tests,
                "slowest": slowest,
                "nodes": {n.name: n.seconds for n in result.nodes},
                "span_s": phases["sql_s"],
                "startup_s": phases["startup_s"],
                "direct_s": direct["total_s"],
                "direct_nodes": direct["per_node"],
            }
        )
    )


def _spread(ratios: list[float]) -> str:
    """``"median of 3 cold builds (1.28-1.35)"`` when there was more than one."""
    if len(ratios) < 2:
        return ""
    return f"median of {len(ratios)} cold builds ({min(ratios):.2f}-{max(ratios):.2f})"


def generate_raw(users: int, out: Path) -> tuple[Path, float | None]:
    """The raw files for ``users`` (generated once; same seed, same bytes)."""
    folder = out / f"raw-{users}"
    if (folder / "users.parquet").exists() and (folder / "events.parquet").exists():
        return folder, None
    from sandbox.data import generate

    started = time.perf_counter()
    generate(users=users, days=60, seed=42, out=folder, fmt="parquet")
    return folder, time.perf_counter() - started


def proposed_project(out: Path) -> Path:
    """A copy of dbt_project/ with the recommended change (bench/proposed/) applied."""
    copy = out / "dbt_project_proposed"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(
        ROOT / "dbt_project", copy, ignore=shutil.ignore_patterns("target", "logs", ".user.yml")
    )
    staging = copy / "models" / "staging" / "stg_user_events.sql"
    text = staging.read_text()
    if "materialized" not in text:  # not applied upstream yet
        staging.write_text((PROPOSED / "stg_user_events_config.sql").read_text() + text)
    return copy


def measure(
    users: int,
    out: Path,
    label: str,
    project: Path | None = None,
    replay_sql: bool = True,
    unit_tests: bool = False,
    repeats: int = 1,
) -> dict:
    """Generate (once), then build + replay in a fresh child process, ``repeats`` times.

    Returns the JSON (plus rusage) of the repetition with the median SQL-phase ratio, and
    every repetition's ratio under ``"ratios"``: one cold process per build, as in production,
    and a median so one noisy moment on a shared machine does not decide the result.
    """
    raw, generated_s = generate_raw(users, out)
    runs = [_measure_once(raw, out, label, project, replay_sql, unit_tests) for _ in range(repeats)]
    runs.sort(key=lambda d: d["span_s"] / d["direct_s"] if replay_sql else d["elapsed_s"])
    data = runs[len(runs) // 2]
    data["ratios"] = [d["span_s"] / d["direct_s"] for d in runs] if replay_sql else []
    data["generated_s"] = generated_s
    return data


def _measure_once(
    raw: Path, out: Path, label: str, project: Path | None, replay_sql: bool, unit_tests: bool
) -> dict:
    folder = out / f"wh-{label}"
    shutil.rmtree(folder, ignore_errors=True)
    env = {"SANDBOX_RAW_DIR": str(raw), "SANDBOX_WAREHOUSE": str(folder / "sandbox.duckdb")}
    if project is not None:
        env["SANDBOX_DBT_PROJECT_DIR"] = str(project)
    else:
        env["SANDBOX_DBT_PROJECT_DIR"] = ""
    args = [
        sys.executable,
        __file__,
        "--worker",
        "--direct-db",
        str(out / f"direct-{label}" / "sandbox.duckdb"),
    ]
    if not replay_sql:
        args.append("--no-replay")
    if unit_tests:
        args.append("--unit-tests")
    child = run_child(args, env=env)
    if child.returncode != 0:
        raise RuntimeError(f"the {label} build failed:\n{child.stderr[-3000:]}")
    data = last_json(child.stdout)
    data.update(child_wall_s=child.wall_s, child_cpu_s=child.cpu_s, raw=str(raw))
    return data


def run(quick: bool = False, out: Path | None = None, proposed: bool | None = None):
    """Measure every size; return the measurements (and save them in bench/out)."""
    out = out or OUT
    sizes = [2_000] if quick else [100_000, 1_000_000]
    measurements: list[Measurement] = []
    details = {}
    label = ""
    for users in sizes:
        label = f"{users // 1000}k" if users < 1_000_000 else f"{users // 1_000_000}m"
        data = measure(users, out, label, repeats=REPEATS.get(users, 1))
        details[label] = data
        ratio = data["span_s"] / data["direct_s"]
        nodes = data["models"] + data["data_tests"] + data["unit_tests"]
        per_node_ms = (data["span_s"] - data["direct_s"]) / nodes * 1000
        events = data["rows"].get("staging.stg_user_events", 0)
        tag = f"{users:,} users"
        if data["generated_s"] is not None:
            measurements.append(
                Measurement(
                    AREA,
                    f"{tag}: generate raw files",
                    data["generated_s"],
                    "s",
                    note=f"{events:,} events",
                )
            )
        measurements += [
            Measurement(
                AREA, f"{tag}: dbt build, wall (in-process dbtRunner)", data["elapsed_s"], "s",
                f"< {BUILD_1M_TARGET_S:.0f} s" if users == 1_000_000 else "",
                data["elapsed_s"] < BUILD_1M_TARGET_S if users == 1_000_000 else None,
                f"{data['models']} models, {data['data_tests']} data tests; "
                f"{data['build_cpu_s']:.0f} s CPU",
            ),
            Measurement(AREA, f"{tag}: dbt fixed start-up", data["startup_s"], "s", note="parse, graph, connection, hooks, artifacts"),
            Measurement(AREA, f"{tag}: dbt SQL phase (first node to last)", data["span_s"], "s", note=f"sum over 2 threads {data['node_sum_s']:.1f} s"),
            Measurement(AREA, f"{tag}: same statements directly in DuckDB", data["direct_s"], "s", note="one connection, in dbt's order"),
            Measurement(
                AREA, f"{tag}: dbt's own work per node", per_node_ms, "ms",
                note=f"(SQL phase - direct) / {nodes} nodes: rendering, adapter calls, and two threads sharing the cores",
            ),
            Measurement(
                AREA, f"{tag}: ratio dbt SQL phase / direct DuckDB", ratio, "x",
                f"<= {SQL_RATIO_TARGET}" if users >= 100_000 else "",
                ratio <= SQL_RATIO_TARGET if users >= 100_000 else None,
                "; ".join(filter(None, [
                    "" if users >= 100_000 else "small data: dbt's per-node work dominates",
                    _spread(data["ratios"]),
                ])),
            ),
            Measurement(
                AREA, f"{tag}: audit checks added (freshness, completeness, marts non-empty)",
                data["audit_s"], "s", note="dbt node time, inside the SQL phase",
            ),
            Measurement(
                AREA, f"{tag}: publish both marts (one DuckDB transaction)", data["publish_s"], "s",
                note=f"history insert + view per dated mart, after dbt; "
                f"{data['publish_s'] / data['elapsed_s']:.0%} of the dbt build's wall",
            ),
            Measurement(
                AREA, f"{tag}: peak memory of the build", data["peak_rss_gib"], "GiB",
                f"< {MEMORY_TARGET_GIB:.0f} GiB" if users == 1_000_000 else "",
                data["peak_rss_gib"] < MEMORY_TARGET_GIB if users == 1_000_000 else None,
            ),
        ]  # fmt: skip
        if users == sizes[0]:
            with_unit = measure(
                users, out, f"{label}-unit-tests", unit_tests=True, repeats=REPEATS.get(users, 1)
            )
            details[f"{label}-unit-tests"] = with_unit
            unit_nodes = [n for n in with_unit["nodes"] if n not in data["nodes"]]
            unit_dbt_s = sum(with_unit["nodes"][n] for n in unit_nodes)
            unit_sql_s = sum(with_unit["direct_nodes"].get(n, 0.0) for n in unit_nodes)
            measurements.append(
                Measurement(
                    AREA, f"{tag}, with --unit-tests (the CI build): ratio SQL phase / direct",
                    with_unit["span_s"] / with_unit["direct_s"], "x",
                    note="; ".join(filter(None, [
                        f"{len(unit_nodes)} unit tests: {unit_dbt_s:.2f} s in dbt for "
                        f"{unit_sql_s * 1000:.0f} ms of SQL; SQL phase {with_unit['span_s']:.2f} s "
                        f"vs {data['span_s']:.2f} s without",
                        _spread(with_unit["ratios"]),
                    ])),
                )
            )  # fmt: skip
    if proposed is None:
        proposed = not quick
    if proposed:
        users, base = sizes[-1], details[label]
        label = f"{label}-proposed"
        data = measure(users, out, label, project=proposed_project(out), replay_sql=False)
        details[label] = data
        measurements += [
            Measurement(
                AREA, f"{users:,} users, proposed (stg_user_events as a view): dbt build, wall", data["elapsed_s"], "s",
                note=f"{data['build_cpu_s']:.0f} s CPU; current models: {base['elapsed_s']:.1f} s wall, {base['build_cpu_s']:.0f} s CPU",
            ),
            Measurement(AREA, f"{users:,} users, proposed / current build wall", data["elapsed_s"] / base["elapsed_s"], "x"),
            Measurement(AREA, f"{users:,} users, proposed / current build CPU", data["build_cpu_s"] / base["build_cpu_s"], "x"),
            Measurement(AREA, f"{users:,} users, proposed: peak memory", data["peak_rss_gib"], "GiB"),
        ]  # fmt: skip
    notes = _notes(details, label if proposed else "")
    if not quick:
        save("data", measurements, {"details": details, "notes": notes})
    return measurements, notes


def _notes(details: dict, proposed_label: str) -> str:
    """Where the time goes at the largest size, and what the proposed models change."""
    base_label = next(k for k in reversed(details) if "-" not in k)
    base = details[base_label]
    lines = [
        f"Slowest nodes at {base_label} (seconds per node: dbt on 2 threads, the same statement directly in DuckDB"
        + (", and with the proposed models):" if proposed_label else "):"),
        "",
        "| node | dbt s | direct s |" + (" proposed s |" if proposed_label else ""),
        "|---|---:|---:|" + ("---:|" if proposed_label else ""),
    ]
    for seconds, name in base["slowest"]:
        direct = base["direct_nodes"].get(name, float("nan"))
        row = f"| {name} | {seconds:.1f} | {direct:.1f} |"
        if proposed_label:
            row += f" {details[proposed_label]['nodes'].get(name, float('nan')):.1f} |"
        lines.append(row)
    if proposed_label:
        lines += ["", _proposed_note(base, details[proposed_label])]
    return "\n".join(lines)


def _proposed_note(base: dict, proposed: dict) -> str:
    """What the proposed models did in this run, in words that follow its numbers."""
    wall = proposed["elapsed_s"] / base["elapsed_s"]
    memory = proposed["peak_rss_gib"] / base["peak_rss_gib"]
    return (
        "Measured and not adopted (`--proposed` builds a patched copy of `dbt_project/`): "
        "materialize `stg_user_events` as a **view**. The table is a full copy of the raw events "
        "written into the DuckDB file only to be read by the tests and one model; through a view "
        "they read the raw files directly, so each reader scans and casts the file itself. In this "
        f"run the build took {wall:.2f}x the wall time of the current models "
        f"({'slower' if wall > 1 else 'faster'}) and {memory:.2f}x their peak memory "
        f"({'more' if memory > 1 else 'less'}). It is not the default in any case: a DuckDB view "
        "over `read_parquet(...)` stays bound to the raw folder of the build that created it, so "
        "once that folder changes or goes away (a backfill from another folder, a drill's "
        "temporary copy) every query on staging fails, and staging would no longer hold what the "
        f"gate tested. The current build is {BUILD_1M_TARGET_S / base['elapsed_s']:.1f}x inside "
        f"its {BUILD_1M_TARGET_S:.0f} s target at this size."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 users, seconds")
    parser.add_argument(
        "--proposed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also build with bench/proposed/ applied (default: on unless --quick)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--direct-db", help=argparse.SUPPRESS)
    parser.add_argument("--no-replay", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--unit-tests", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if not os.environ.get("SANDBOX_DBT_PROJECT_DIR"):
            os.environ.pop("SANDBOX_DBT_PROJECT_DIR", None)
        worker(args)
        return
    if args.quick:
        with tempfile.TemporaryDirectory(prefix="bench-data-") as scratch:
            found, notes = run(quick=True, out=Path(scratch), proposed=args.proposed)
    else:
        found, notes = run(proposed=args.proposed)
    report(AREA, found)
    print()
    print(notes)


if __name__ == "__main__":
    main()
