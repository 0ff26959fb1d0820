"""``sandbox infer``: arguments, printed summary and exit codes."""

# ruff: noqa: F811 (the fixtures imported from tests.decision_fixtures are test arguments)

from __future__ import annotations

import argparse

import pytest

from sandbox.config import SandboxError
from sandbox.decision import cli
from tests.decision_fixtures import (
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
    from sandbox.decision.clients import LLM_CHOICES
    from sandbox.decision.pipeline import MODES

    assert cli.LLM_CHOICES == LLM_CHOICES and cli.MODES == MODES


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
