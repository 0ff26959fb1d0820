"""The data plane's build: AI-ready rows on good data, a GateFailed that names the culprit on bad."""

from __future__ import annotations

import importlib
import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from sandbox import config
from sandbox.config import DBT_PROJECT_DIR, DEFAULT_RAW_DIR
from sandbox.data import GateFailed, build
from sandbox.data.drills import window_off_by_one
from sandbox.warehouse import connect
from tests.conftest import AS_OF

dbt_runner = importlib.import_module("sandbox.data.dbt_runner")

MART = "marts.fct_user_features_for_ai"


def test_shipped_data_gives_one_row_per_user_within_bounds(warehouse: Path) -> None:
    with connect(read_only=True) as con:
        users = con.execute("select count(*) from staging.stg_users").fetchone()[0]
        rows, distinct, shortest, longest, dates = con.execute(
            f"""select count(*), count(distinct user_id), min(length(user_summary_for_llm)),
                       max(length(user_summary_for_llm)), count(distinct as_of_date) from {MART}"""
        ).fetchone()
        never = con.execute(
            f"select user_summary_for_llm from {MART} where days_since_last_event is null limit 1"
        ).fetchone()[0]
    assert rows == distinct == users == 500
    assert 50 <= shortest and longest <= 500
    assert dates == 1
    assert never.endswith("No activity recorded since signing up.")


def test_result_reports_layers_and_tests(isolated_env: Path) -> None:
    result = build(AS_OF)
    assert result.models == 6 and result.data_tests >= 20
    assert result.unit_tests == 0, "the daily build checks data; unit tests run on request"
    assert "6 models and" in result.render() and "unit tests" not in result.render()
    assert list(result.rows) == [
        "staging.stg_user_events",
        "staging.stg_users",
        "intermediate.int_user_engagement_rolling",
        "intermediate.int_users_as_of",
        "marts.dim_users",
        MART,
    ]
    assert result.rows[MART] == 500
    assert "warehouse:" in result.render()


def test_building_the_same_date_twice_gives_identical_marts(mart_rows, warehouse: Path) -> None:
    before = mart_rows()
    build(AS_OF)
    assert mart_rows() == before


def test_a_backfill_ignores_later_data(warehouse: Path) -> None:
    build("2026-10-15")
    with connect(read_only=True) as con:
        latest, as_of, users = con.execute(
            f"select max(last_event_at), min(as_of_date), count(*) from {MART}"
        ).fetchone()
    assert str(as_of) == "2026-10-15"
    assert str(latest) < "2026-10-15"
    assert users < 500  # users who signed up later do not exist yet on that date


def test_a_build_publishes_both_marts_and_keeps_each_date_in_their_history(
    warehouse: Path,
) -> None:
    """marts.* hold the last published date; marts.*_history every published date's rows."""
    with connect(read_only=True) as con:
        shipped = con.execute(f"select * from {MART}_history order by user_id").fetchall()
    result = build("2026-10-15")
    assert result.publish_s > 0 and "marts published for 2026-10-15" in result.render()
    with connect(read_only=True) as con:
        for mart in (MART, "marts.dim_users"):
            assert con.execute(f"select distinct as_of_date from {mart}").fetchall() == [
                (date(2026, 10, 15),)
            ]
            history = con.execute(
                f"select as_of_date, count(*) from {mart}_history group by 1 order by 1"
            ).fetchall()
            assert [d for d, _ in history] == [date(2026, 10, 15), AS_OF]
        kept = con.execute(
            f"select * from {MART}_history where as_of_date = ? order by user_id", [AS_OF]
        ).fetchall()
        candidates = con.execute(
            "select table_name from information_schema.tables "
            "where table_schema = 'marts_candidate' order by 1"
        ).fetchall()
    assert kept == shipped
    assert candidates == [("dim_users",), ("fct_user_features_for_ai",)]


def _append(path: Path, line: str) -> None:
    with path.open("a") as handle:
        handle.write(line + "\n")


def _replace_first_data_line(path: Path, old: str, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")


BAD_DATA = {
    "duplicate user id": (
        lambda raw: _append(raw / "users.csv", (raw / "users.csv").read_text().splitlines()[1]),
        ("unique", "staging.stg_users", "user_id"),
    ),
    "null user id": (
        lambda raw: _replace_first_data_line(raw / "users.csv", '"u000001"', ""),
        ("not_null", "staging.stg_users", "user_id"),
    ),
    "unknown plan tier": (
        lambda raw: _replace_first_data_line(raw / "users.csv", '"free"', '"platinum"'),
        ("accepted_values", "staging.stg_users", "plan_tier"),
    ),
    "event for an unknown user": (
        lambda raw: _append(raw / "events.csv", '999999,"u999999","login",2026-10-30 10:00:00,"{}"'),
        ("relationships", "staging.stg_user_events", "user_id"),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_fails_the_gate_and_keeps_the_mart(
    mart_rows, warehouse: Path, raw_copy: Path, case: str
) -> None:
    corrupt, (test, model, column) = BAD_DATA[case]
    before = mart_rows()
    corrupt(raw_copy)
    with pytest.raises(GateFailed) as caught:
        build(AS_OF)
    failure = next(f for f in caught.value.failures if f.test == test)
    assert (failure.model, failure.column, failure.failing_rows) == (model, column, 1)
    assert f"{test} on {model}.{column}: 1 failing row" in str(caught.value)
    assert caught.value.skipped, "downstream models must be skipped"
    assert mart_rows() == before


def test_runaway_summary_fails_the_contract_before_the_swap(
    mart_rows, warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model change that makes some summaries > 500 chars is stopped by the check constraint."""
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models" / "marts" / "fct_user_features_for_ai.sql"
    sql = model.read_text()
    old = "'User has been on the ', plan_tier"
    assert old in sql
    model.write_text(sql.replace(
        old,
        "case when days_since_signup > 400 then repeat('Valued long-time customer. ', 20) "
        f"else '' end, {old}",
    ))
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(project))
    before = mart_rows()
    with pytest.raises(GateFailed) as caught:
        build(AS_OF)
    (failure,) = caught.value.failures
    assert failure.kind == "model" and failure.model == MART
    assert "length(user_summary_for_llm) BETWEEN 50 AND 500" in failure.message
    assert mart_rows() == before


def test_unit_tests_run_on_request_and_pass(mart_rows, warehouse: Path) -> None:
    before = mart_rows()
    result = build(AS_OF, unit_tests=True)
    assert result.unit_tests == 3 and result.models == 6
    assert "3 unit tests passed" in result.render()
    assert mart_rows() == before


def test_a_logic_bug_is_caught_by_a_unit_test_before_its_model_is_built(
    mart_rows, warehouse: Path
) -> None:
    """An off-by-one in the window: the data tests cannot see it, the unit test does."""
    before = mart_rows()
    with window_off_by_one() as project:
        with pytest.raises(GateFailed) as caught:
            build(AS_OF, unit_tests=True)
        (failure,) = caught.value.failures
        assert failure.kind == "unit test" and failure.test == "test_seven_day_window_boundaries"
        assert failure.model == "intermediate.int_user_engagement_rolling"
        assert "int_user_engagement_rolling" in caught.value.skipped
        assert "user_id u1: event_count_7d expected 2, got 3" in failure.message
        assert "Fix the model's SQL" in str(caught.value)
        assert mart_rows() == before
        # No shipped event falls on the as-of instant, so no data test can see the bug: the
        # daily build passes. That is why every change to the SQL meets the unit tests.
        assert build(AS_OF).data_tests >= 20
    assert os.environ.get("SANDBOX_DBT_PROJECT_DIR") != str(project) and not project.exists()


def test_missing_as_of_date_is_a_clear_error(isolated_env: Path) -> None:
    from sandbox.config import SandboxError

    with pytest.raises(SandboxError, match="YYYY-MM-DD"):
        build("yesterday")


def test_a_unit_test_diff_reads_as_one_line() -> None:
    from sandbox.data.gate import unit_test_diff as _unit_test_diff

    red, blue, green, off = "\x1b[31;1m", "\x1b[34;1m", "\x1b[32;1m", "\x1b[0m"
    table = (
        "\n\nactual differs from expected:\n\n@@,user_id,event_count_7d\r\n"
        f"{blue}→{off},u1 ,{red}2{blue}→{green}3{off}\r\n"
        "+++,u9 ,4\r\n---,u2 ,0\r\n   ,u3 ,1\r\n"
    )
    assert _unit_test_diff(table) == (
        "actual rows differ from the expected ones: user_id u1: event_count_7d expected 2, got 3"
        " | unexpected row user_id=u9, event_count_7d=4 | missing row user_id=u2, event_count_7d=0"
    )
    assert _unit_test_diff("Runtime Error: no such column") is None


def _parses(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record every `dbt parse` this process runs from now on."""
    seen: list[list[str]] = []
    invoke = dbt_runner.invoke

    def counting(args, *rest, **kwargs):
        if args[0] == "parse":
            seen.append(args)
        return invoke(args, *rest, **kwargs)

    monkeypatch.setattr(dbt_runner, "invoke", counting)
    return seen


def _published(day: date) -> list[tuple]:
    with connect(read_only=True) as con:
        return con.execute(
            "select * from marts.fct_user_features_for_ai_history "
            "where as_of_date = ? order by user_id",
            [day],
        ).fetchall()


def test_a_backfill_parses_the_project_once_and_builds_what_a_fresh_parse_builds(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dbt_runner._manifests.clear()
    parses = _parses(monkeypatch)
    days = [date(2026, 10, 30), date(2026, 10, 31), AS_OF]
    for day in days:
        build(day)
    assert len(parses) == 1, "one parse for three dates from the same raw folder"
    cached = {day: _published(day) for day in days}
    # the same dates, each parsed afresh (not from a parse dbt saved), in another warehouse
    monkeypatch.setattr(config, "CACHE_ROOT", _unwritable(tmp_path))
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(tmp_path / "fresh" / "sandbox.duckdb"))
    for day in (days[0], AS_OF):
        dbt_runner._manifests.clear()
        build(day)
        assert _published(day) == cached[day] != []


def test_each_raw_folder_is_read_as_named_and_an_edited_model_is_parsed_again(
    warehouse: Path, raw_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt reads the raw folder from SANDBOX_RAW_DIR: a build reads exactly the folder named
    (a duplicate user there fails the gate; a folder whose name holds a quote and braces is
    read as named), then the shipped one again, from a parse kept per folder."""
    dbt_runner._manifests.clear()
    parses = _parses(monkeypatch)
    monkeypatch.delenv("SANDBOX_RAW_DIR")
    build(AS_OF)  # the shipped folder, parsed
    shipped = _published(AS_OF)
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(raw_copy))
    _append(raw_copy / "users.csv", (raw_copy / "users.csv").read_text().splitlines()[1])
    with pytest.raises(GateFailed, match="unique on staging.stg_users.user_id"):
        build(AS_OF)
    odd = tmp_path / "it's {odd} raw"
    shutil.copytree(DEFAULT_RAW_DIR, odd)
    _replace_first_data_line(odd / "users.csv", '"free"', '"platinum"')
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(odd))
    with pytest.raises(GateFailed, match="accepted_values") as caught:
        build(AS_OF)
    assert caught.value.failures[0].raw_file == str(odd / "users.csv")
    monkeypatch.delenv("SANDBOX_RAW_DIR")
    build(AS_OF)
    assert _published(AS_OF) == shipped
    assert len(parses) == 3, "one parse per raw folder; the shipped one's is kept"
    assert all('"raw_dir"' not in args[args.index("--vars") + 1] for args in parses)

    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(project))
    before = dbt_runner._manifest_key("duckdb")
    assert dbt_runner._manifest_key("duckdb") == before
    model = project / "models" / "marts" / "dim_users.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    assert dbt_runner._manifest_key("duckdb") != before


def _unwritable(tmp_path: Path) -> Path:
    """A cache root that cannot be created (a path under a file): nothing is cached."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    return blocker / "cache"


def _saved_parse_reused(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For every `dbt parse` this process runs from now on: did dbt reuse its saved parse?"""
    reused: list[bool] = []
    invoke = dbt_runner.invoke

    def watching(args, callbacks=None, *rest, **kwargs):
        seen: set[str] = set()
        outcome = invoke(args, [*(callbacks or []), lambda e: seen.add(e.info.name)], *rest, **kwargs)
        if args[0] == "parse":
            reused.append("PartialParsingSkipParsing" in seen)
        return outcome

    monkeypatch.setattr(dbt_runner, "invoke", watching)
    return reused


def test_a_new_process_starts_from_the_parse_dbt_saved_and_parses_what_changed(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt's saved parse is kept in the sandbox's cache and copied into each new parse: dbt
    itself checks it (vars, profile, dbt_project.yml, every file's checksum) and parses only
    what changed. Clearing the in-process manifests is what a new process starts with."""
    monkeypatch.setattr(config, "CACHE_ROOT", tmp_path / "cache")
    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(project))
    reused = _saved_parse_reused(monkeypatch)
    dbt_runner._manifests.clear()
    build(AS_OF)
    assert reused == [False]
    (saved,) = (tmp_path / "cache" / "dbt-parse").glob("*.msgpack")
    shipped = _published(AS_OF)

    dbt_runner._manifests.clear()
    build(AS_OF)
    assert reused[-1], "nothing changed: dbt used its saved parse"
    assert _published(AS_OF) == shipped
    assert not Path(dbt_runner.WAREHOUSE_PLACEHOLDER).exists()  # the parse opened nothing

    # a model added to the project is parsed and built; the saved parse now holds it
    (project / "models" / "marts" / "parse_probe.sql").write_text("select 42 as answer\n")
    dbt_runner._manifests.clear()
    result = build(AS_OF)
    assert not reused[-1]
    assert "parse_probe" in {node.name for node in result.nodes}
    with connect(read_only=True) as con:
        assert con.execute("select answer from marts.parse_probe").fetchone() == (42,)
    dbt_runner._manifests.clear()
    build(AS_OF)
    assert reused[-1]

    # a saved parse that is not one (a cut-short file): dbt parses everything, and saves anew
    saved.write_bytes(saved.read_bytes()[:1000])
    dbt_runner._manifests.clear()
    build(AS_OF)
    assert reused == [False, True, False, True, False] and saved.stat().st_size > 1000
    assert _published(AS_OF) == shipped


def test_the_saved_parses_kept_are_the_most_recently_used_and_no_stale_part_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setattr(dbt_runner, "PARSES_KEPT", 2)
    folder = tmp_path / "dbt-parse"
    folder.mkdir()
    now = time.time()
    for age, name in ((300, "old"), (200, "used"), (100, "newer")):
        (folder / f"{name}.msgpack").write_bytes(b"x")
        os.utime(folder / f"{name}.msgpack", (now - age, now - age))
    stale, live = folder / ".a.msgpack.1.part", folder / ".b.msgpack.2.part"
    for part, age in ((stale, 7200), (live, 10)):  # a killed writer's, a writer's at work
        part.write_bytes(b"x")
        os.utime(part, (now - age, now - age))
    mine = tmp_path / "mine.msgpack"
    mine.write_bytes(b"fresh")
    dbt_runner._keep_parse(mine, folder / "used.msgpack", changed=False)  # used again
    assert sorted(p.name for p in folder.iterdir()) == [".b.msgpack.2.part", "newer.msgpack",
                                                        "used.msgpack"]  # fmt: skip
    assert (folder / "used.msgpack").read_bytes() == b"x"  # marked as used, not replaced
    dbt_runner._keep_parse(mine, folder / "new.msgpack", changed=True)
    assert (folder / "new.msgpack").read_bytes() == b"fresh"
    assert sorted(p.name for p in folder.glob("*.msgpack")) == ["new.msgpack", "used.msgpack"]


def test_the_saved_parse_is_one_per_project_folder_and_warehouse_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(tmp_path / "a" / "sandbox.duckdb"))
    mine = dbt_runner._saved_parse("duckdb")
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(tmp_path / "b" / "sandbox.duckdb"))
    assert dbt_runner._saved_parse("duckdb") == mine  # the folder is not in dbt's parse
    monkeypatch.setenv("SANDBOX_WAREHOUSE", str(tmp_path / "b" / "other.duckdb"))
    assert dbt_runner._saved_parse("duckdb") != mine  # the catalog name is
    monkeypatch.setenv("SANDBOX_DBT_PROJECT_DIR", str(tmp_path / "project-copy"))
    assert dbt_runner._saved_parse("duckdb") not in (mine, None)
    monkeypatch.setattr(config, "CACHE_ROOT", _unwritable(tmp_path))
    assert dbt_runner._saved_parse("duckdb") is None
