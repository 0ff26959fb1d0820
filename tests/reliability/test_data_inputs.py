"""Input drills: hostile raw-folder names, bad raw paths and sloppy dates.

The raw folder reaches dbt as a var and is written into SQL as a quoted literal, so any
legal folder name builds from exactly that folder; a missing or unusable folder fails with
a message about the path (never "fix the raw data"); a date that is not strict
``YYYY-MM-DD`` is refused before anything runs. Each time the published marts stay as they
were and the fake Messages API sees no request.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from sandbox.cli import main
from sandbox.config import DEFAULT_RAW_DIR, SHIPPED_AS_OF_DATE, InvalidDate
from sandbox.data import build
from sandbox.warehouse import checksum, connect
from tests.reliability.harness import Requests, rows

AS_OF = SHIPPED_AS_OF_DATE
DAY_BEFORE = AS_OF - timedelta(days=1)

HOSTILE_NAMES = [
    "a'b",
    "x') union all select * from read_csv('elsewhere.csv') --",
    "sp ace $HOME ${x} %s {name} {0} ü 数据 ; -- \"q\"",
]


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Requests:
    path = tmp_path / "requests.jsonl"
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(path))
    return Requests(path)


def relations() -> list[str]:
    """Every table and view (the published marts are views of their history)."""
    return [
        f"{s}.{t}"
        for s, t in rows(
            "select table_schema, table_name from information_schema.tables order by 1, 2"
        )
    ]


def fingerprint() -> dict[str, str]:
    with connect(read_only=True) as con:
        return {t: checksum(con, t) for t in relations() if t.startswith(("marts.", "decision."))}


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_folder_name_builds_from_exactly_that_folder(
    name: str, isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / name
    shutil.copytree(DEFAULT_RAW_DIR, folder)
    users = folder / "users.csv"
    lines = users.read_text().splitlines()
    assert lines[1].startswith('"u000001","free"')
    lines[1] = lines[1].replace('"free"', '"enterprise"', 1)  # this folder's own mark
    users.write_text("\n".join(lines) + "\n")
    (tmp_path / "elsewhere.csv").write_text("id\n1\n")
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(folder))

    result = build(AS_OF)

    assert result.rows["marts.fct_user_features_for_ai"] == 500
    assert rows(
        "select plan_tier from marts.fct_user_features_for_ai where user_id = 'u000001'"
    ) == [("enterprise",)]


@pytest.mark.parametrize("problem", ["missing", "a file", "empty", "unreadable"])
def test_a_bad_raw_path_fails_with_a_message_about_the_path(
    problem: str, warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log, capsys
) -> None:
    path = tmp_path / "raw data"
    expected = {
        "missing": "does not exist",
        "a file": "is a file, not a folder",
        "empty": "no raw data in",
        "unreadable": "cannot be read",
    }[problem]
    if problem == "a file":
        path.write_text("not a folder")
    elif problem == "empty":
        path.mkdir()
    elif problem == "unreadable":
        import os

        if os.geteuid() == 0:
            pytest.skip("root reads every folder")
        shutil.copytree(DEFAULT_RAW_DIR, path)
        path.chmod(0)
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(path))
    before = fingerprint()

    code = main(["build", "--date", str(DAY_BEFORE)])
    err = capsys.readouterr().err

    assert code == 2
    assert expected in err and str(path) in err
    assert "fix the raw data" not in err.lower() and "Traceback" not in err
    assert main(["infer", "--date", str(DAY_BEFORE), "--no-progress"]) == 2
    assert f"holds {AS_OF}, not {DAY_BEFORE}" in capsys.readouterr().err
    assert fingerprint() == before
    assert log.entries() == []


SLOPPY = ["2026-11-01junk", "2026-11-011", "2026-11-1", "notadate", "2026-02-30", "01/11/2026"]


@pytest.mark.parametrize("value", SLOPPY)
def test_a_sloppy_date_is_refused_everywhere_before_anything_runs(
    value: str, warehouse: Path, log, capsys
) -> None:
    before = fingerprint()
    for command in (["build", "--date", value], ["infer", "--date", value, "--no-progress"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert repr(value) in err and "YYYY-MM-DD" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(InvalidDate):
        build(value)
    assert fingerprint() == before
    assert log.entries() == []
