"""Time drills: the same instants written in every way a raw file writes them give the same
marts, on any machine time zone; an unreadable timestamp or an unknown zone fails the gate
naming the file and the column, publishes nothing and sends no LLM request.

The shipped files write naive UTC (``2026-10-31 23:58:01``). Here they are rewritten as
``Z``, as ``+02:00`` and ``-07:00`` local times, with a zone name (``Asia/Kolkata``), mixed
row by row, and as Parquet TIMESTAMPTZ columns.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from sandbox.config import DEFAULT_RAW_DIR, ROOT, SHIPPED_AS_OF_DATE
from sandbox.data import GateFailed, build
from tests.reliability.harness import CHILD_TIMEOUT_S, Requests, rows

AS_OF = SHIPPED_AS_OF_DATE
MARTS = ("marts.fct_user_features_for_ai", "marts.dim_users")
MACHINE_ZONES = ("UTC", "America/Los_Angeles", "Asia/Kolkata")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _offset(hours: int) -> Callable[[datetime], str]:
    zone = timezone(timedelta(hours=hours))
    return lambda instant: instant.astimezone(zone).isoformat(sep=" ")


def _zone_name(name: str) -> Callable[[datetime], str]:
    zone = ZoneInfo(name)
    return lambda instant: f"{instant.astimezone(zone):%Y-%m-%d %H:%M:%S} {name}"


FORMS: dict[str, Callable[[datetime], str]] = {
    "Z": lambda instant: instant.strftime("%Y-%m-%dT%H:%M:%SZ"),
    "+02:00": _offset(2),
    "-07:00": _offset(-7),
    # A zone without daylight-saving time: a local time in the hour a DST change repeats
    # (e.g. 02:30 Europe/Berlin on 2026-10-25) names two instants and is read as the later
    # one, so exact exports write offsets (see README, "Raw data").
    "zone name": _zone_name("Asia/Kolkata"),
}


def _mixed(instant: datetime, row: int) -> str:
    forms = [*FORMS.values(), lambda i: i.strftime("%Y-%m-%d %H:%M:%S")]
    return forms[row % len(forms)](instant)


def rewrite(folder: Path, form: Callable[[datetime, int], str]) -> Path:
    """A copy of the shipped raw files with every timestamp written by ``form``."""
    folder.mkdir(parents=True)
    for name, column in (("users.csv", "signed_up_at"), ("events.csv", "created_at")):
        with (DEFAULT_RAW_DIR / name).open(newline="", encoding="utf-8") as source:
            table = list(csv.DictReader(source))
        for row_number, row in enumerate(table):
            row[column] = form(_parse(row[column]), row_number)
        with (folder / name).open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=list(table[0]), quoting=csv.QUOTE_MINIMAL)
            writer.writeheader()
            writer.writerows(table)
    return folder


def parquet_with_timestamptz(folder: Path) -> Path:
    """The shipped files as Parquet whose timestamp columns are TIMESTAMPTZ (UTC-adjusted)."""
    folder.mkdir(parents=True)
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'Asia/Kolkata'")  # the writer's zone must not matter
        for name, column in (("users", "signed_up_at"), ("events", "created_at")):
            source = (DEFAULT_RAW_DIR / f"{name}.csv").as_posix()
            con.execute(
                f"copy (select * replace (cast({column} || '+00:00' as timestamptz) as {column}) "
                f"from read_csv('{source}', all_varchar=true)) "
                f"to '{(folder / f'{name}.parquet').as_posix()}' (format parquet)"
            )
        kind = con.execute(
            f"select column_type from (describe select * from '{(folder / 'events.parquet').as_posix()}') "
            "where column_name = 'created_at'"
        ).fetchone()[0]
    assert kind == "TIMESTAMP WITH TIME ZONE"
    return folder


def marts() -> dict[str, list[tuple]]:
    return {m: rows(f"select * from {m} order by user_id") for m in MARTS}


@pytest.mark.parametrize("name", [*FORMS, "mixed"])
def test_every_way_of_writing_an_instant_gives_the_same_marts(
    name: str, warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = marts()  # built from the shipped naive-UTC files
    form = FORMS.get(name)
    raw = rewrite(tmp_path / "raw", (lambda i, _: form(i)) if form else _mixed)
    sample = (raw / "events.csv").read_text().splitlines()[1]
    assert "Z" in sample or "+" in sample or "-07" in sample or "/" in sample
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(raw))
    build(AS_OF)
    assert marts() == expected


def _build_in_child(zone: str, raw: Path, warehouse: Path) -> dict[str, list[tuple]]:
    env = {**os.environ, "TZ": zone, "SANDBOX_RAW_DIR": str(raw), "SANDBOX_WAREHOUSE": str(warehouse)}
    done = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "build", "--date", str(AS_OF)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {m: con.execute(f"select * from {m} order by user_id").fetchall() for m in MARTS}


@pytest.mark.slow  # dbt builds under three time zones
@pytest.mark.parametrize("fmt", ["csv, mixed forms", "parquet, TIMESTAMPTZ"])
def test_the_marts_do_not_depend_on_the_machine_time_zone(
    fmt: str, warehouse: Path, tmp_path: Path
) -> None:
    expected = marts()
    if fmt.startswith("csv"):
        raw = rewrite(tmp_path / "raw", _mixed)
    else:
        raw = parquet_with_timestamptz(tmp_path / "raw")
    for zone in MACHINE_ZONES:
        built = _build_in_child(zone, raw, tmp_path / zone.replace("/", "_") / "w.duckdb")
        assert built == expected, f"TZ={zone} gives other marts"


def _append_event(raw: Path, created_at: str) -> None:
    first_user = (raw / "users.csv").read_text().splitlines()[1].split(",")[0]
    with (raw / "events.csv").open("a", encoding="utf-8") as out:
        out.write(f'99999990,{first_user},"login",{created_at},"{{}}"\n')


@pytest.mark.parametrize(
    "value", ["2026-10-30 10:00:00 Mars/Olympus", "2026-10-32 10:00:00+02:00", "30/10/2026 10:00"]
)
def test_an_unreadable_timestamp_fails_the_gate_naming_file_and_column(
    value: str, raw_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from sandbox.cli import main

    log = Requests(tmp_path / "requests.jsonl")
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log.path))
    _append_event(raw_copy, value)
    with pytest.raises(GateFailed) as caught:
        build(AS_OF)
    text = str(caught.value)
    (failure,) = caught.value.failures
    assert (failure.test, failure.model, failure.column) == (
        "not_null", "staging.stg_user_events", "event_at",
    )  # fmt: skip
    rows_before = len((raw_copy / "events.csv").read_text().splitlines()) - 2
    assert (
        f"column created_at of events.csv holds 1 value that is not a timestamp or name an "
        f"unknown time zone (data row {rows_before + 1})"
    ) in text
    assert str(raw_copy / "events.csv") in text
    assert value not in text, "raw text is user-controlled: never echoed"
    assert "nothing has been published yet" in text
    assert main(["infer", "--date", str(AS_OF), "--no-progress"]) == 2
    assert "does not exist yet" in capsys.readouterr().err
    assert log.entries() == []


def test_a_zone_name_is_applied_with_its_daylight_saving_rules() -> None:
    """Summer and winter time in one zone: each local time maps to its own UTC instant."""
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        got = [
            con.execute("select timezone('UTC', try_cast(? as timestamptz))", [text]).fetchone()[0]
            for text in ("2026-10-24 12:00:00 Europe/Berlin", "2026-10-26 12:00:00 Europe/Berlin")
        ]
    assert got == [datetime(2026, 10, 24, 10), datetime(2026, 10, 26, 11)]


def test_an_unknown_zone_in_the_users_file_names_that_file(
    warehouse: Path, raw_copy: Path
) -> None:
    before = marts()
    lines = (raw_copy / "users.csv").read_text().splitlines()
    fields = lines[1].split(",")
    fields[2] = fields[2] + " Atlantis/Capital"
    lines[1] = ",".join(fields)
    (raw_copy / "users.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(GateFailed) as caught:
        build(AS_OF)
    text = str(caught.value)
    assert "not_null on staging.stg_users.signed_up_at" in text
    assert "column signed_up_at of users.csv holds 1 value" in text and "(data row 1)" in text
    assert "Atlantis/Capital" not in text
    assert marts() == before
