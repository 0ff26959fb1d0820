"""Strict dates: every entry point reads YYYY-MM-DD exactly, or refuses with the reason."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from sandbox.cli import main
from sandbox.config import InvalidDate, SandboxError, parse_date


def test_a_strict_iso_date_and_a_date_pass() -> None:
    assert parse_date("2026-11-01") == date(2026, 11, 1)
    assert parse_date(date(2026, 11, 1)) == date(2026, 11, 1)


@pytest.mark.parametrize(
    "sloppy",
    [
        "2026-11-01junk",
        "2026-11-011",
        " 2026-11-01",
        "2026-11-01 ",
        "2026-11-01T00:00:00",
        "2026-1-01",
        "20261101",
        "2026-02-30",
        "2026-13-01",
        "notadate",
        "",
        "２０２６-11-01",  # full-width digits match \d in Python unless refused
    ],
)
def test_sloppy_dates_are_refused_with_the_reason(sloppy: str) -> None:
    with pytest.raises(InvalidDate, match="YYYY-MM-DD"):
        parse_date(sloppy)


def test_a_datetime_or_a_number_is_refused() -> None:
    with pytest.raises(InvalidDate, match="date and time"):
        parse_date(datetime(2026, 11, 1, 5, tzinfo=UTC))
    with pytest.raises(InvalidDate):
        parse_date(20261101)  # type: ignore[arg-type]
    assert issubclass(InvalidDate, SandboxError) and issubclass(InvalidDate, ValueError)


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "--date", "2026-11-01junk"],
        ["infer", "--date", "2026-11-011"],
        ["run", "--date", "notadate"],
        ["run", "--start", "2026-11-01", "--end", "2026-11-3"],
        ["docs", "--date", "2026/11/01"],
    ],
)
def test_every_command_refuses_a_sloppy_date_with_exit_2_and_no_traceback(argv, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "YYYY-MM-DD" in err and "Traceback" not in err
    assert err.startswith(f"sandbox {argv[0]}: ")
