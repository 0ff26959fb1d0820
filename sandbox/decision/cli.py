"""The ``sandbox infer`` sub-command: prepare -> inference -> write for one date."""

from __future__ import annotations

import argparse

LLM_CHOICES = ("mock", "anthropic")
MODES = ("realtime", "batch")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``infer`` to the ``sandbox`` command's sub-parsers."""
    cmd = subparsers.add_parser(
        "infer",
        help="LLM recommendations for one date (prepare -> inference -> write)",
        description=(
            "Freeze the date's feature rows, ask the LLM about the rows not done yet, and "
            "publish the answers to marts.user_recommendations. Exit 0 when every row is "
            "done, 3 when rows failed, the budget stopped the run or a batch is still running."
        ),
    )
    cmd.add_argument("--date", required=True, help="the execution date, YYYY-MM-DD")
    cmd.add_argument(
        "--llm",
        choices=LLM_CHOICES,
        default=None,
        help="mock (offline fake, the default) or anthropic (needs ANTHROPIC_API_KEY); "
        "default: SANDBOX_LLM",
    )
    cmd.add_argument("--workers", type=int, default=10, help="concurrent requests (default 10)")
    cmd.add_argument(
        "--max-cost-usd",
        type=float,
        default=None,
        help="refuse the run if its estimate is above this, and stop submitting before spending it",
    )
    cmd.add_argument(
        "--mode", choices=MODES, default="realtime", help="realtime (default) or batch (half price)"
    )
    cmd.add_argument(
        "--no-escalate",
        dest="escalate",
        action="store_false",
        help="keep high-stakes answers from the cheap model (no escalation requests)",
    )
    cmd.add_argument("--model", default=None, help="primary model id (default: models.json)")
    cmd.add_argument(
        "--limit", type=int, default=None, dest="batch_size", help="at most this many pending rows"
    )
    cmd.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    cmd.add_argument(
        "--reprocess",
        choices=("prompt",),
        default=None,
        help="prompt: re-ask the date's rows answered under another prompt_version or model "
        "(cost estimated first, budgeted); by default a row is never paid for twice",
    )
    cmd.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sandbox.decision.pipeline import infer  # the SDK import waits until it is needed

    if args.reprocess == "prompt":
        return _reprocess(args)
    summary = infer(
        args.date,
        llm=args.llm,
        workers=args.workers,
        max_cost_usd=args.max_cost_usd,
        mode=args.mode,
        escalate=args.escalate,
        model=args.model,
        batch_size=args.batch_size,
        progress=args.progress,
    )
    print(summary.render())
    return summary.exit_code


def _reprocess(args: argparse.Namespace) -> int:
    from sandbox.decision.pipeline import prepare_features
    from sandbox.decision.rollout import reprocess_prompt

    prepare_features(args.date)
    result = reprocess_prompt(
        args.date,
        llm=args.llm,
        workers=args.workers,
        max_cost_usd=args.max_cost_usd,
        mode=args.mode,
        escalate=args.escalate,
        model=args.model,
        batch_size=args.batch_size,
        progress=args.progress,
    )
    print(result.render())
    return result.exit_code
