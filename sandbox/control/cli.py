"""``sandbox run``: both DAGs, for one date or a range, with a table of what happened."""

from __future__ import annotations

import argparse

from sandbox.config import SHIPPED_AS_OF_DATE, SandboxError, parse_date


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``run`` sub-command to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "run",
        help="run both Airflow DAGs (dbt, then AI) for a date or a range of dates",
        description=(
            "Run dbt_production and ai_recommendation_pipeline with Airflow's dag.test() for "
            "each date, print each task's state and the results, and exit non-zero if any "
            "task failed. Airflow's task logs go to .airflow/logs/sandbox-run.log."
        ),
    )
    parser.add_argument(
        "--date", help=f"execution date, YYYY-MM-DD (default {SHIPPED_AS_OF_DATE})"
    )
    parser.add_argument("--start", help="first date of a range (with --end)")
    parser.add_argument("--end", help="last date of a range (with --start)")
    parser.add_argument(
        "--llm",
        choices=["mock", "anthropic"],
        help="LLM provider (default: SANDBOX_LLM, else mock)",
    )
    parser.set_defaults(func=handler)
    return parser


def dates_from(args: argparse.Namespace) -> list:
    """The dates ``--date`` or ``--start``/``--end`` ask for (the shipped date by default)."""
    from sandbox.control.pipeline import date_range

    if args.date and (args.start or args.end):
        raise SandboxError("give either --date or --start and --end, not both")
    if bool(args.start) != bool(args.end):
        raise SandboxError("--start and --end go together: give both (or use --date)")
    if args.start:
        return date_range(parse_date(args.start), parse_date(args.end))
    return [parse_date(args.date) if args.date else SHIPPED_AS_OF_DATE]


def handler(args: argparse.Namespace) -> int:
    """Run the pipeline for the requested dates; 0 when every task succeeded, else 1."""
    from sandbox.config import warehouse_path
    from sandbox.control.airflow_env import log_dir
    from sandbox.control.pipeline import run_pipeline

    dates = dates_from(args)
    llm = getattr(args, "llm", None)
    print(f"running dbt_production and ai_recommendation_pipeline for {len(dates)} date(s)...")

    def show(report) -> None:
        print()
        print(report.render(), flush=True)

    reports = run_pipeline(dates, llm=llm, on_report=show)
    failed = [r.execution_date.isoformat() for r in reports if not r.ok]
    print()
    print(f"warehouse: {warehouse_path()}")
    print(f"Airflow task logs: {log_dir() / 'sandbox-run.log'}")
    if failed:
        print(f"FAILED for {', '.join(failed)}: see the table(s) above.")
        return 1
    print(f"all tasks succeeded for {len(reports)} date(s).")
    return 0
