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


def test_settings_are_read_each_time_they_are_asked_for(monkeypatch, tmp_path) -> None:
    from sandbox import config

    monkeypatch.delenv("SANDBOX_DBT_PROJECT_DIR", raising=False)
    monkeypatch.delenv("SANDBOX_LLM", raising=False)
    assert config.dbt_project_dir() == config.DBT_PROJECT_DIR and config.llm_choice() == "mock"
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("SANDBOX_LLM", " Anthropic ")
    monkeypatch.setenv("SANDBOX_AIRFLOW_HOME", str(tmp_path / "af"))
    assert config.dbt_project_dir() == tmp_path.resolve()
    assert config.airflow_home() == (tmp_path / "af").resolve()
    assert config.llm_choice() == "anthropic" and config.llm_choice("mock") == "mock"


def test_a_given_value_wins_over_the_variable(monkeypatch) -> None:
    from sandbox import config

    monkeypatch.setenv("SANDBOX_MAX_COST_USD", "2.5")
    monkeypatch.setenv("SANDBOX_INFER_MODE", "batch")
    assert config.max_cost_usd() == 2.5 and config.max_cost_usd("0.5") == 0.5
    assert config.infer_mode() == "batch" and config.infer_mode("realtime") == "realtime"
    monkeypatch.delenv("SANDBOX_MAX_COST_USD")
    monkeypatch.delenv("SANDBOX_INFER_MODE")
    assert config.max_cost_usd() is None and config.infer_mode() == "realtime"


@pytest.mark.parametrize(
    ("name", "value", "function", "message"),
    [
        ("SANDBOX_LLM", "gpt", "llm_choice", "unknown LLM 'gpt'.*SANDBOX_LLM"),
        ("SANDBOX_MAX_COST_USD", "lots", "max_cost_usd", "must be a number of US dollars.*SANDBOX_MAX_COST_USD"),
        ("SANDBOX_MAX_COST_USD", "-1", "max_cost_usd", "must be 0 or more"),
        ("SANDBOX_MAX_COST_USD", "nan", "max_cost_usd", "must be 0 or more"),
        ("SANDBOX_INFER_MODE", "stream", "infer_mode", "realtime or batch.*SANDBOX_INFER_MODE"),
        ("SANDBOX_BATCH_FIRST_WAIT_S", "soon", "seconds_setting", "SANDBOX_BATCH_FIRST_WAIT_S='soon' is not a number of seconds"),
        ("SANDBOX_BATCH_FIRST_WAIT_S", "-5", "seconds_setting", "SANDBOX_BATCH_FIRST_WAIT_S='-5'.*set it to 0 or more"),
        ("SANDBOX_BATCH_CREATE_GRACE_S", "inf", "seconds_setting", "SANDBOX_BATCH_CREATE_GRACE_S='inf'.*default 120"),
    ],
)
def test_a_wrong_value_is_refused_with_the_fix(
    monkeypatch, name: str, value: str, function: str, message: str
) -> None:
    from sandbox import config

    monkeypatch.setenv(name, value)
    call = getattr(config, function)
    with pytest.raises(SandboxError, match=message):
        call(name, 120.0) if function == "seconds_setting" else call()
