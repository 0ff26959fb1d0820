"""The ``sandbox`` command: one entry point for every plane.

Expected failures (bad input, a failed quality gate, a busy warehouse, a missing API key)
print a short paragraph naming the cause and the fix and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence

from sandbox.config import SHIPPED_AS_OF_DATE, SandboxError, parse_date, warehouse_path

# a failed eval gate; an expected failure (bad input, busy warehouse...); a budget-stopped eval
EXIT_GATE_FAILED, EXIT_ERROR, EXIT_INCOMPLETE = 1, 2, 3


def _generate(args: argparse.Namespace) -> int:
    from sandbox.data import generate

    files = generate(
        args.users, args.days, args.seed, args.out, parse_date(args.as_of), args.format
    )
    print(
        f"wrote {files.users:,} users and {files.events:,} events (as of {files.as_of}):\n"
        f"  {files.users_path}\n  {files.events_path}\n"
        f"build them with: SANDBOX_RAW_DIR={files.users_path.parent} sandbox build "
        f"--date {files.as_of}"
    )
    return 0


def _build(args: argparse.Namespace) -> int:
    from sandbox.data import build

    as_of, progress = parse_date(args.date), sys.stderr.isatty()
    result = build(as_of, target=args.target, unit_tests=args.unit_tests, progress=progress)
    print(result.render())
    return 0


def _docs(args: argparse.Namespace) -> int:
    from sandbox.data.build import docs

    page = docs(parse_date(args.date))
    print(f"dbt docs written to {page}\nopen it in a browser: models, columns, tests and lineage")
    return 0


def _reset(args: argparse.Namespace) -> int:
    from sandbox.data import target_dir
    from sandbox.warehouse import step_lock

    path = warehouse_path()
    lock = path.with_name(path.name + ".lock")
    if lock.exists():  # refuse while a step holds the warehouse
        with step_lock("sandbox reset"):
            pass
    candidates = (
        path,
        path.with_name(path.name + ".wal"),
        lock,
        target_dir(),
        path.with_name(path.stem + ".mock-batches"),
        path.with_name(path.stem + ".journal"),  # the decision plane's answer journal
        path.parent / "spark-warehouse",
    )
    removed = [place for place in candidates if place.exists()]
    for place in removed:
        if place.is_dir():
            shutil.rmtree(place)
        else:
            place.unlink()
    print("removed " + ", ".join(map(str, removed)) if removed else f"nothing to remove at {path}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from sandbox import evals

    run = evals.run_eval(
        llm=args.llm,
        model=args.model,
        golden_dir=args.golden,
        max_cost_usd=args.max_cost_usd,
        announce=lambda line: print(line, file=sys.stderr),
    )
    print(run.render())
    verdict = evals.check_gate(run)
    print(f"\n{verdict.render()}")
    if args.record:
        evals.record_eval(run, accepted=args.accept)
    if args.accept:
        path = evals.write_baseline(run)
        print(
            f"\naccepted: wrote {path}; review the diff and commit it with the change it measures"
        )
        return 0
    if not run.complete:
        return EXIT_INCOMPLETE
    if run.llm == "anthropic":
        missing = evals.check_prompt_evaluated(run.prompt_version, run.model)
        if missing:
            print(f"\n{missing}")
    return 0 if verdict.passed else EXIT_GATE_FAILED


def _add_eval_command(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser(
        "eval",
        help="run the golden set through the decision plane and judge it against its baseline",
        description=(
            "Build the golden users' summaries with the current dbt models (cached), ask the "
            "model about each one with the decision plane's prompt and validation, and print "
            "agreement, per-type precision/recall, a confusion table, the invalid-answer rate "
            "and tokens and cost per row. The run is recorded in ops.eval_runs and "
            "ops.eval_cases. Exit 0 when the change gate passes (or with --accept), 1 when it "
            "fails, 3 when the budget stopped the run, 2 for something to fix."
        ),
    )
    cmd.add_argument("--model", help="model id (default: the primary in models.json)")
    cmd.add_argument(
        "--llm",
        choices=("mock", "anthropic"),
        help="mock (offline fake, the default) or anthropic (needs ANTHROPIC_API_KEY); "
        "default: SANDBOX_LLM",
    )
    cmd.add_argument(
        "--accept",
        action="store_true",
        help="store this run as the reviewed baseline in data/golden/baselines (commit it)",
    )
    cmd.add_argument(
        "--max-cost-usd",
        type=float,
        help="refuse the run if its estimate is above this, and stop sending before spending it",
    )
    cmd.add_argument("--golden", help="golden set folder (default data/golden)")
    cmd.add_argument(
        "--no-record", dest="record", action="store_false", help="do not write ops.eval_runs"
    )
    cmd.set_defaults(func=_eval)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandbox",
        description="Three-Plane Data + AI Sandbox: Airflow (control), dbt (data), LLM (decision).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="write raw users/events files (deterministic)")
    gen.add_argument("--users", type=int, default=500, help="number of users (default 500)")
    gen.add_argument("--days", type=int, default=60, help="days of events (default 60)")
    gen.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    gen.add_argument("--out", default="data/generated", help="output folder")
    gen.add_argument("--as-of", default=str(SHIPPED_AS_OF_DATE), help="last day + 1 of events")
    gen.add_argument("--format", choices=("auto", "csv", "parquet"), default="auto")
    gen.set_defaults(func=_generate)

    bld = sub.add_parser("build", help="dbt build (models + tests = the quality gate) for a date")
    bld.add_argument("--date", required=True, help="the as-of date, YYYY-MM-DD")
    bld.add_argument("--target", choices=("duckdb", "spark"), default="duckdb")
    bld.add_argument(
        "--unit-tests",
        action="store_true",
        help="also run the dbt unit tests (the models' logic on fixed rows; make test runs them)",
    )
    bld.set_defaults(func=_build)

    doc = sub.add_parser("docs", help="write dbt's static docs site (models, tests, lineage)")
    doc.add_argument("--date", default=str(SHIPPED_AS_OF_DATE), help="as-of date to compile for")
    doc.set_defaults(func=_docs)

    rst = sub.add_parser("reset", help="delete the warehouse file and dbt's target folder")
    rst.set_defaults(func=_reset)
    _add_eval_command(sub)

    from sandbox.control import cli as control
    from sandbox.decision import cli as decision

    for module in (decision, control):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SandboxError as exc:
        print(f"sandbox {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"sandbox {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # python -m sandbox.cli, as the drills run it
    sys.exit(main())
