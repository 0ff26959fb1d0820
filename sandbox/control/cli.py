"""``sandbox run``: both DAGs, for one date or a range, with a table of what happened."""

from __future__ import annotations

import argparse
import sys

from sandbox.config import LLM_CHOICES, MODES, SHIPPED_AS_OF_DATE, SandboxError, parse_date
from sandbox.control.names import AI_DAG, DBT_DAG


def register(subparsers) -> None:
    """Add the ``run`` sub-command to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "run",
        help="run both Airflow DAGs (dbt, then AI) for a date or a range of dates",
        description=(
            "Run dbt_production and ai_recommendation_pipeline with Airflow's dag.test() for "
            "each date and print each task's state and the results. Exit 0 when every date "
            "succeeded, 3 when rows failed or the budget stopped inference (what was answered "
            "is published) or the drift watch flagged a date, 1 when a task failed or the gate blocked inference, 2 for "
            "something to fix first. SIGTERM or Ctrl-C stops it cleanly (no new LLM request; "
            "exit 128 + the signal number). Each task's log is in .airflow/logs/dag_id=.../ "
            "(readable in the Airflow UI), and all of them in .airflow/logs/sandbox-run.log."
        ),
    )
    parser.add_argument("--date", help=f"execution date, YYYY-MM-DD (default {SHIPPED_AS_OF_DATE})")
    parser.add_argument("--start", help="first date of a range (with --end)")
    parser.add_argument("--end", help="last date of a range (with --start)")
    parser.add_argument(
        "--llm", choices=LLM_CHOICES, help="LLM provider (default: SANDBOX_LLM, else mock)"
    )
    parser.add_argument(
        "--max-cost-usd",
        type=float,
        help="spending ceiling of each date's inference (default: SANDBOX_MAX_COST_USD, else none)",
    )
    parser.add_argument(
        "--mode", choices=MODES, help="inference mode (default: SANDBOX_INFER_MODE, else realtime)"
    )
    parser.set_defaults(func=handler)


def dates_from(args: argparse.Namespace) -> list:
    """The dates ``--date`` or ``--start``/``--end`` ask for (the shipped date by default)."""
    from sandbox.control.pipeline import date_range

    if args.date and (args.start or args.end):
        raise SandboxError("give either --date or --start and --end, not both")
    if bool(args.start) != bool(args.end):
        raise SandboxError("--start and --end go together: give both (or use --date)")
    if args.start:
        return date_range(args.start, args.end)
    return [parse_date(args.date) if args.date else SHIPPED_AS_OF_DATE]


def handler(args: argparse.Namespace) -> int:
    """Run the pipeline for the requested dates; exit as the worst date ended (see --help)."""
    from sandbox.config import warehouse_path
    from sandbox.control.airflow_env import log_dir
    from sandbox.control.pipeline import Interrupted, run_pipeline

    dates = dates_from(args)
    print(f"running {DBT_DAG} and {AI_DAG} for {len(dates)} date(s)...")
    try:
        reports = run_pipeline(
            dates, llm=args.llm, max_cost_usd=args.max_cost_usd, mode=args.mode,
            on_report=lambda report: print(f"\n{report.render()}", flush=True),
        )  # fmt: skip
    except Interrupted as exc:
        print(f"sandbox run: {exc}", file=sys.stderr, flush=True)
        return 128 + int(exc.signum)
    print(f"\nwarehouse: {warehouse_path()}")
    print(f"Airflow task logs: {log_dir()} (one file per task attempt; all in sandbox-run.log)")
    code = max(r.exit_code for r in reports)
    not_ok = [f"{r.execution_date} {r.status}" for r in reports if r.status != "success"]
    drifted = [str(r.execution_date) for r in reports if r.exit_code == 3 and r.status == "success"]
    if drifted:
        print(f"DRIFT: {', '.join(drifted)}: the answers are published, but the drift watch "
              "flagged them (ops.pipeline_runs.drift_status, drift_detail): check the "
              "date's inputs before trusting them.")  # fmt: skip
    if code == 0:
        print(f"all tasks succeeded for {len(reports)} date(s).")
    elif code == 3 and not_ok:  # (when only the drift watch flagged dates, said above)
        print(f"INCOMPLETE: {', '.join(not_ok)}: what was answered is published; run again "
              "to retry the failed rows (see the table(s) above).")  # fmt: skip
    elif code != 3:
        print(f"FAILED for {', '.join(not_ok)}: see the table(s) above.")
    return code
