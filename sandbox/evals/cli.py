"""The ``sandbox eval`` sub-command: evaluate the golden set, judge it, optionally accept it."""

from __future__ import annotations

import argparse
import sys

EXIT_GATE_FAILED = 1
EXIT_INCOMPLETE = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval`` to the ``sandbox`` command's sub-parsers."""
    cmd = subparsers.add_parser(
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
    cmd.add_argument("--model", default=None, help="model id (default: the primary in models.json)")
    cmd.add_argument(
        "--llm",
        choices=("mock", "anthropic"),
        default=None,
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
        default=None,
        help="refuse the run if its estimate is above this, and stop sending before spending it",
    )
    cmd.add_argument("--golden", default=None, help="golden set folder (default data/golden)")
    cmd.add_argument(
        "--no-record", dest="record", action="store_false", help="do not write ops.eval_runs"
    )
    cmd.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sandbox.evals.baseline import check_gate, check_prompt_evaluated, write_baseline
    from sandbox.evals.golden import GOLDEN_DIR
    from sandbox.evals.runner import run_eval
    from sandbox.evals.store import record_eval

    run = run_eval(
        llm=args.llm,
        model=args.model,
        golden_dir=args.golden or GOLDEN_DIR,
        max_cost_usd=args.max_cost_usd,
        announce=lambda line: print(line, file=sys.stderr),
    )
    print(run.render())
    verdict = check_gate(run)
    print()
    print(verdict.render())
    if args.record:
        record_eval(run, accepted=args.accept)
    if args.accept:
        path = write_baseline(run)
        print(
            f"\naccepted: wrote {path}; review the diff and commit it with the change it measures"
        )
        return 0
    if not run.complete:
        return EXIT_INCOMPLETE
    if run.llm == "anthropic":
        missing = check_prompt_evaluated(run.prompt_version, run.model)
        if missing:
            print(f"\n{missing}")
    return 0 if verdict.passed else EXIT_GATE_FAILED
