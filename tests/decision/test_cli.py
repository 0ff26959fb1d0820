"""``sandbox infer``: arguments, printed summary and exit codes."""

# ruff: noqa: F811 (the fixtures imported from tests.decision.conftest are test arguments)

from __future__ import annotations

import argparse

import pytest

from sandbox.config import SandboxError
from sandbox.decision import cli
from tests.decision.conftest import (
    DAY,
    mart,  # noqa: F401 (pytest fixtures)
    scalar,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sandbox")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["infer", *argv])


def test_defaults() -> None:
    args = parse("--date", str(DAY))
    assert (args.llm, args.workers, args.max_cost_usd, args.mode, args.escalate) == (
        None,
        10,
        None,
        "realtime",
        True,
    )
    args = parse(
        "--date",
        str(DAY),
        "--llm",
        "mock",
        "--workers",
        "3",
        "--max-cost-usd",
        "0.5",
        "--mode",
        "batch",
        "--no-escalate",
    )
    assert (args.llm, args.workers, args.max_cost_usd, args.mode, args.escalate) == (
        "mock",
        3,
        0.5,
        "batch",
        False,
    )


def test_date_is_required() -> None:
    with pytest.raises(SystemExit):
        parse()


def test_infer_prints_the_summary_and_exits_0(mart, capsys) -> None:
    args = parse("--date", str(DAY), "--no-progress")
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "40 done, 0 failed" in out and "status ok" in out
    assert scalar("select count(*) from marts.user_recommendations") == 40


def test_failed_rows_exit_3(mart, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_MOCK_FAULTS", "refusal=0.5")
    args = parse("--date", str(DAY), "--no-progress")
    assert args.func(args) == 3
    assert "status partial" in capsys.readouterr().out


def test_expected_failures_are_sandbox_errors(mart) -> None:
    args = parse("--date", str(DAY), "--llm", "anthropic", "--no-progress")
    with pytest.raises(SandboxError, match="ANTHROPIC_API_KEY is not set"):
        args.func(args)


def test_main_cli_runs_infer(mart, capsys) -> None:
    from sandbox.cli import main

    assert main(["infer", "--date", str(DAY), "--no-progress"]) == 0
    assert main(["infer", "--date", "2026-13-45", "--no-progress"]) == 2
    assert "is not a date" in capsys.readouterr().err


def test_choices_match_the_engine() -> None:
    from sandbox.config import llm_choice
    from sandbox.decision.steps import MODES

    assert [llm_choice(llm) for llm in cli.LLM_CHOICES] == list(cli.LLM_CHOICES)
    assert cli.MODES == MODES


def test_registering_the_command_does_not_import_the_sdk() -> None:
    import subprocess
    import sys

    code = "import sys, sandbox.cli; sandbox.cli._parser(); print('anthropic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_public_api_resolves() -> None:
    import sandbox.decision as decision

    for name in decision.__all__:
        assert getattr(decision, name) is not None


@pytest.mark.parametrize("budget", ["nan", "inf", "-inf", "0", "-1", "lots"])
def test_a_budget_that_is_not_a_positive_number_exits_2(budget, capsys) -> None:
    from sandbox.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["infer", "--date", str(DAY), "--max-cost-usd", budget])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --max-cost-usd:" in err and "Traceback" not in err
    assert err.count("--max-cost-usd must") == 0  # the flag is named once, by argparse
    why = {"lots": "is not a number", "-inf": "expected one argument"}  # argparse: -inf is a flag
    assert why.get(budget, "must be a positive number") in err


def test_a_limit_that_leaves_rows_pending_exits_3(mart, capsys) -> None:
    from sandbox.cli import main

    assert main(["infer", "--date", str(DAY), "--limit", "10", "--no-progress"]) == 3
    out = capsys.readouterr().out
    assert "status pending" in out and "30 rows left pending (--limit 10)" in out
    assert main(["infer", "--date", str(DAY), "--no-progress"]) == 0


def test_reset_removes_the_journal(tmp_path, capsys) -> None:
    from sandbox.cli import main
    from sandbox.decision.journal import Journal, journal_dir

    j = Journal()
    j.append({"calls": [], "results": [], "failures": [], "held": []})
    j.close(all_committed=False)
    assert journal_dir().is_dir()
    assert main(["reset"]) == 0
    assert not journal_dir().exists()
    assert str(journal_dir()) in capsys.readouterr().out


def test_signals_become_a_stop_event_and_handlers_are_restored() -> None:
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with cli.stop_on_signals() as (stop, seen):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5) and seen == {"signal": "SIGTERM"}
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
