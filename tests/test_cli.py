"""The ``sandbox`` command: exit codes and messages a learner sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.cli import main


def test_build_prints_a_summary(isolated_env: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["build", "--date", "2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert "marts.fct_user_features_for_ai" in out and "500 rows" in out
    assert "6 models and" in out and "unit tests" not in out
    assert main(["build", "--date", "2026-11-01", "--unit-tests"]) == 0
    assert "and 3 unit tests passed" in capsys.readouterr().out


def test_bad_date_is_one_line_not_a_traceback(capsys: pytest.CaptureFixture) -> None:
    assert main(["build", "--date", "2026-13-40"]) == 2
    err = capsys.readouterr().err
    assert "is not a date" in err and "Traceback" not in err


def test_missing_raw_data_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(tmp_path / "empty"))
    assert main(["build", "--date", "2026-11-01"]) == 2
    assert "sandbox generate" in capsys.readouterr().err


def test_gate_failure_exits_non_zero_with_the_failing_test(
    isolated_env: Path, raw_copy: Path, capsys: pytest.CaptureFixture
) -> None:
    users = raw_copy / "users.csv"
    users.write_text(users.read_text().replace('"starter"', '"gold"', 1))
    assert main(["build", "--date", "2026-11-01"]) == 2
    err = capsys.readouterr().err
    assert "accepted_values on staging.stg_users.plan_tier" in err
    assert "Traceback" not in err


def test_generate_then_reset(isolated_env: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "gen"
    assert main(["generate", "--users", "20", "--days", "10", "--out", str(out)]) == 0
    assert (out / "users.csv").exists() and "20 users" in capsys.readouterr().out
    isolated_env.parent.mkdir(parents=True, exist_ok=True)
    isolated_env.write_bytes(b"")
    assert main(["reset"]) == 0
    assert not isolated_env.exists()


def test_python_dash_m_and_warehouse_in_use(isolated_env: Path) -> None:
    """A second process finds the warehouse locked: a clear message naming the holder's PID."""
    import duckdb

    isolated_env.parent.mkdir(parents=True, exist_ok=True)
    holder = duckdb.connect(str(isolated_env))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sandbox", "build", "--date", "2026-11-01"],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        holder.close()
    assert proc.returncode == 2, proc.stderr
    assert "warehouse is in use by PID" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_docs_writes_a_static_site(warehouse: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["docs", "--date", "2026-11-01"]) == 0
    page = warehouse.parent / "dbt_target" / "static_index.html"
    assert page.exists() and "fct_user_features_for_ai" in page.read_text()
