"""The ``sandbox infer`` sub-command: prepare -> inference -> write for one date."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sandbox.config import LLM_CHOICES, MODES, SandboxError
from sandbox.decision.pricing import Budget


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``infer`` to the ``sandbox`` command's sub-parsers."""
    cmd = subparsers.add_parser(
        "infer",
        help="LLM recommendations for one date (prepare -> inference -> write)",
        description=(
            "Freeze the date's feature rows, ask the LLM about the rows not done yet, and "
            "publish the answers to marts.user_recommendations. Exit 0 when every row is "
            "done; 3 when rows failed, the budget stopped the run, --limit left rows pending "
            "or a batch is still running; 130 (SIGINT) or 143 (SIGTERM) when a signal stopped "
            "it (the answers of requests in flight are kept); 2 when something needs fixing."
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
        type=_dollars,
        default=None,
        help="refuse the run if its estimate is above this, and stop submitting before spending it",
    )
    cmd.add_argument(
        "--mode",
        choices=MODES,
        default="realtime",
        help="realtime (default) or batch (half price)",
    )
    cmd.add_argument(
        "--no-escalate",
        dest="escalate",
        action="store_false",
        help="keep high-stakes answers from the cheap model (no escalation requests)",
    )
    cmd.add_argument("--model", default=None, help="primary model id (default: models.json)")
    cmd.add_argument(
        "--limit",
        type=int,
        default=None,
        dest="batch_size",
        help="at most this many pending rows",
    )
    cmd.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    cmd.set_defaults(func=_run)


def _dollars(text: str) -> float:
    """A positive, finite number of dollars, refused as the budget refuses it."""
    try:
        return Budget(float(text)).limit_usd
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of dollars") from None
    except SandboxError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--max-cost-usd ")) from None


@contextmanager
def stop_on_signals() -> Iterator[tuple[threading.Event, dict]]:
    """Turn SIGTERM and SIGINT into a stop event while the ``with`` block runs; a second signal
    of the same kind acts as before (e.g. a second ^C raises KeyboardInterrupt)."""
    stop, seen = threading.Event(), {}
    if threading.current_thread() is not threading.main_thread():
        yield stop, seen
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum, frame) -> None:
        name = signal.Signals(signum).name
        if stop.is_set() and name in seen.values():
            signal.signal(signum, saved[signum])
            signal.raise_signal(signum)
            return
        seen.setdefault("signal", name)
        stop.set()

    for sig in saved:
        signal.signal(sig, handler)
    try:
        yield stop, seen
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def _run(args: argparse.Namespace) -> int:
    # the SDK is imported when the command runs, not when it is registered
    from sandbox.decision.steps import infer

    names = "llm workers max_cost_usd mode escalate model batch_size progress".split()
    options = {name: getattr(args, name) for name in names}
    with stop_on_signals() as (stop, seen):
        summary = infer(args.date, stop=stop, **options)
    if summary.status == "interrupted" and seen.get("signal"):
        summary.interrupted_by = seen["signal"]
    print(summary.render())
    if summary.status == "interrupted":
        print(
            f"sandbox infer: interrupted by {summary.interrupted_by}: sent no new request and kept "
            f"{summary.done:,} rows answered ({summary.requests:,} requests in the ledger); "
            f"{summary.pending_left:,} rows are left for the next run",
            file=sys.stderr,
        )
    return summary.exit_code
