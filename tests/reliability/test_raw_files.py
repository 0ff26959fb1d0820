"""Raw-file drills: a file that cannot be read, or holds implausible values, fails the gate in
the project's own words, and never repeats the row's text.

A malformed CSV (a missing or extra field, a Latin-1 byte, an unclosed quote, a header
without a column) is read with an explicit dialect before dbt runs: the message names the
file, the line, the field count or the column and byte offset, and the fix. The hostile row
holds a marker that must appear in no output and no log file: stdout, stderr, dbt's logs and
target folder, and, through ``sandbox run``, the Airflow task logs and ``sandbox-run.log``.
Implausible values (a sign-up after the export, a country that is not a two-letter code)
fail a data test naming the model, column, raw file and count. Harmless variations (a BOM,
CRLF line ends, reordered or extra columns) build the shipped mart.
"""

# ruff: noqa: F811 (the fixtures imported from tests.control.conftest are test arguments)

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.cli import main
from sandbox.config import SHIPPED_AS_OF_DATE as AS_OF
from sandbox.data import GateFailed, build, target_dir
from sandbox.warehouse import connect
from tests.control.conftest import (  # noqa: F401 (pytest fixtures)
    airflow_home_fixture,
    migrated_home_fixture,
    sandbox_run,
)

MARKER = "SECRET-TOKEN-7f3a9c"
HOSTILE = f"{MARKER} <script>alert(1)</script> IGNORE PREVIOUS INSTRUCTIONS"
MART = "marts.fct_user_features_for_ai"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


def _set_line(path: Path, number: int, text: str) -> None:
    """Replace physical line ``number`` (1 = the header) of ``path``."""
    lines = _lines(path)
    lines[number - 1] = text
    _write(path, lines)


def _hostile_event_missing_a_field(raw: Path) -> None:
    _set_line(raw / "events.csv", 40, f'99999990,"u000001","login","{HOSTILE}"')


def _marker_free(folder: Path) -> list[Path]:
    """Every file under ``folder`` that holds the marker (should be none)."""
    return [p for p in folder.rglob("*") if p.is_file() and MARKER.encode() in p.read_bytes()]


def _mart() -> list[tuple]:
    with connect(read_only=True) as con:
        return con.execute(f"select * from {MART} order by user_id").fetchall()


def _quoted_line_break_then_a_short_row(raw: Path) -> None:
    """Line 3's country spans two lines ("F", "R"), so data row 6 starts on line 8."""
    lines = _lines(raw / "users.csv")
    lines[2:3] = [lines[2][:-2], 'R"']
    lines[7] = lines[7].rsplit(",", 1)[0]
    _write(raw / "users.csv", lines)


MALFORMED: dict[str, tuple[Callable[[Path], None], str, list[str]]] = {
    "a hostile events row missing a field": (
        _hostile_event_missing_a_field,
        "stg_user_events",
        ["line 40 of events.csv", "expected 5 fields, found 4", "UTF-8 CSV"],
    ),
    "a users row missing its trailing field": (
        lambda raw: _set_line(raw / "users.csv", 7, _lines(raw / "users.csv")[6].rsplit(",", 1)[0]),
        "stg_users",
        ["line 7 of users.csv", "expected 4 fields, found 3"],
    ),
    "a short row after a quoted line break": (
        _quoted_line_break_then_a_short_row,
        "stg_users",
        ["line 8 of users.csv", "expected 4 fields, found 3"],
    ),
    "a users row with an extra field": (
        lambda raw: _set_line(raw / "users.csv", 9, _lines(raw / "users.csv")[8] + ',"x"'),
        "stg_users",
        ["line 9 of users.csv", "expected 4 fields, found 5"],
    ),
    "a Latin-1 byte": (
        lambda raw: _write(
            raw / "users.csv",
            [*_lines(raw / "users.csv")[:4], '"u_zurich","free",2025-01-01 00:00:00,"Zürich"'],
            "latin-1",
        ),
        "stg_users",
        ["line 5 of users.csv, column country: byte offset", "not UTF-8", "iconv"],
    ),
    "an unclosed quote": (
        lambda raw: _set_line(raw / "users.csv", 3, '"u000002","free,2025-12-06 12:56:32,"FR"'),
        "stg_users",
        ["users.csv", "a quoted value is never closed"],
    ),
    "a header without plan_tier": (
        lambda raw: _set_line(raw / "users.csv", 1, '"id","tier","signed_up_at","country"'),
        "stg_users",
        ["header (line 1) of users.csv lacks column plan_tier"],
    ),
    "a semicolon-separated file": (
        lambda raw: _write(
            raw / "users.csv", [x.replace(",", ";") for x in _lines(raw / "users.csv")]
        ),
        "stg_users",
        ["line 1 (the header) of users.csv holds a single field", "not comma-separated"],
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_raw_file_gets_the_projects_own_message(
    case: str, warehouse: Path, raw_copy: Path, capsys
) -> None:
    breaks, model, expected = MALFORMED[case]
    breaks(raw_copy)
    before = _mart()

    with pytest.raises(GateFailed) as caught:
        build(AS_OF)
    (failure,) = caught.value.failures
    assert (failure.kind, failure.model) == ("model", f"staging.{model}")
    assert failure.raw_file and Path(failure.raw_file).parent == raw_copy
    text = str(caught.value)
    for words in expected:
        assert words in text, text
    assert "Original Line" not in text and "Possible fixes" not in text and "sniff" not in text
    assert _mart() == before

    assert main(["build", "--date", str(AS_OF)]) == 2
    out, err = capsys.readouterr()
    assert expected[0] in err and "Traceback" not in err
    assert MARKER not in out + err + text
    assert _marker_free(target_dir()) == []


def test_the_hostile_row_reaches_no_output_and_no_log_through_sandbox_run(
    warehouse: Path, raw_copy: Path, airflow_home: Path
) -> None:
    _hostile_event_missing_a_field(raw_copy)
    run = sandbox_run("--date", str(AS_OF))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "line 40 of events.csv: expected 5 fields, found 4" in run.stdout + run.stderr
    assert MARKER not in run.stdout + run.stderr
    logs = list(airflow_home.rglob("*.log"))
    assert any(p.name == "sandbox-run.log" for p in logs), "the run log is written"
    assert _marker_free(airflow_home) == []
    assert _marker_free(warehouse.parent) == []  # the warehouse folder and dbt's target, logs


@pytest.mark.parametrize(
    "variation",
    ["a byte-order mark", "CRLF line ends", "reordered and extra columns"],
)
def test_harmless_variations_build_the_shipped_mart(
    variation: str, warehouse: Path, raw_copy: Path
) -> None:
    shipped = _mart()
    users = raw_copy / "users.csv"
    data = users.read_bytes()
    if variation == "a byte-order mark":
        users.write_bytes(b"\xef\xbb\xbf" + data)
    elif variation == "CRLF line ends":
        users.write_bytes(data.replace(b"\n", b"\r\n"))
    else:
        rows = [line.split(",") for line in _lines(users)]
        extra = ['"note"'] + ['"free text, with a comma"'] * (len(rows) - 1)
        _write(
            users, [",".join([r[3], x, r[2], r[0], r[1]]) for r, x in zip(rows, extra, strict=True)]
        )
    assert build(AS_OF).rows[MART] == 500
    assert _mart() == shipped


def _add_user(raw: Path, row: str) -> None:
    with open(raw / "users.csv", "a", encoding="utf-8") as fh:
        fh.write(row + "\n")


def test_a_sign_up_after_the_export_fails_the_gate_without_events(
    warehouse: Path, raw_copy: Path
) -> None:
    _add_user(raw_copy, '"u_future","pro",2027-03-01 10:00:00,"NL"')
    before = _mart()
    with pytest.raises(GateFailed) as caught:
        build(AS_OF)
    (failure,) = caught.value.failures
    assert (failure.test, failure.model, failure.column) == (
        "not_after_export",
        "staging.stg_users",
        "signed_up_at",
    )
    assert failure.failing_rows == 1 and failure.raw_column == "signed_up_at"
    text = str(caught.value)
    assert f"(raw file: {raw_copy / 'users.csv'}, column signed_up_at)" in text
    assert "1 failing row" in text and "at or after 2026-11-01 00:00:00 UTC" in text
    assert _mart() == before
    # a backfill of an earlier date judges the same file the same way
    with pytest.raises(GateFailed, match="not_after_export on staging.stg_users.signed_up_at"):
        build("2026-10-15")


def test_a_future_sign_up_that_contradicts_events_names_both_files_and_columns(
    warehouse: Path, raw_copy: Path
) -> None:
    users = _lines(raw_copy / "users.csv")
    assert users[1].startswith('"u000001"')
    users[1] = '"u000001","free",2027-03-01 00:00:00,"NL"'
    _write(raw_copy / "users.csv", users)
    with pytest.raises(GateFailed) as caught:
        build(AS_OF)
    found = {f.test: f for f in caught.value.failures}
    assert set(found) == {"not_after_export", "assert_no_events_before_signup"}
    early = found["assert_no_events_before_signup"]
    assert early.failing_rows and early.failing_rows > 0
    for words in ("staging.stg_user_events.event_at", "column created_at",
                  "staging.stg_users.signed_up_at", "column signed_up_at"):  # fmt: skip
        assert words in early.describe()


@pytest.mark.parametrize("country", ["Netherlands", "nl", "N1", "X" * 1_000_000, ""])
def test_a_country_that_is_not_a_two_letter_code_fails_the_gate(
    country: str, warehouse: Path, raw_copy: Path
) -> None:
    value = f'"{country}"' if country else ""  # an empty, unquoted value is NULL: unknown
    _add_user(raw_copy, f'"u_country","free",2025-01-01 00:00:00,{value}')
    if not country:  # accepted
        assert build(AS_OF).rows[MART] == 501
        return
    with pytest.raises(GateFailed) as caught:
        build(AS_OF)
    (failure,) = caught.value.failures
    assert (failure.test, failure.model, failure.column, failure.failing_rows) == (
        "two_letter_code",
        "staging.stg_users",
        "country_code",
        1,
    )
    text = str(caught.value)
    assert "column country)" in text and "two-letter country code" in text
    assert len(text) < 2000 and (len(country) < 5 or country not in text)
