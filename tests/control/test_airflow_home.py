"""A new Airflow home's metadata DB: migrated once per Airflow version, copied after that."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from sandbox import config
from sandbox.control import airflow_env


def _contents(db: Path) -> dict:
    """Everything a migration writes that matters: schema, Alembic version, rows it adds."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {
            "schema": sorted(conn.execute("select type, name, sql from sqlite_master").fetchall()),
            "alembic": conn.execute("select version_num from alembic_version").fetchall(),
            "pools": conn.execute("select pool, slots from slot_pool").fetchall(),
            "log templates": conn.execute(
                "select id, filename, elasticsearch_id from log_template order by id"
            ).fetchall(),
        }


def _journal_mode(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]


def _log(home: Path) -> str:
    return (home / "logs" / "db-migrate.log").read_text()


@pytest.mark.slow  # airflow db migrate
def test_the_first_home_is_migrated_and_later_homes_start_from_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "a venv's #cache? 100%"  # read as a file URI: must be quoted
    monkeypatch.setattr(config, "CACHE_ROOT", cache)
    first = airflow_env.migrate_home(tmp_path / "first")
    (template,) = (cache / "airflow").glob("airflow-*.db")
    assert "copied from" not in _log(tmp_path / "first")
    assert _journal_mode(template) == "delete"  # one self-contained file

    second = airflow_env.migrate_home(tmp_path / "second")
    assert _log(tmp_path / "second").startswith(f"copied from {template}")
    assert _contents(second) == _contents(first)
    assert _contents(first)["alembic"] and _contents(first)["pools"] == [("default_pool", 128)]
    assert _journal_mode(second) == "wal"
    assert not list((tmp_path / "second").glob(".*.part"))

    # a home that has its DB keeps it: nothing is copied over a DB that Airflow wrote to
    with contextlib.closing(sqlite3.connect(second)) as conn, conn:
        conn.execute("insert into slot_pool (pool, slots, description, include_deferred) "
                     "values ('mine', 3, '', 0)")  # fmt: skip
    airflow_env.migrate_home(tmp_path / "second")
    assert ("mine", 3) in _contents(second)["pools"]

    # a template that is not a whole migrated DB is never copied: the home is migrated, and
    # the template written again
    template.write_bytes(b"SQLite format 3\x00 but cut short")
    third = airflow_env.migrate_home(tmp_path / "third")
    assert "copied from" not in _log(tmp_path / "third")
    assert _contents(third) == _contents(first) == _contents(template)


def test_each_airflow_version_and_setting_that_shapes_the_db_has_its_own_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "CACHE_ROOT", tmp_path / "cache")
    base = {"PATH": "/bin", **airflow_env.airflow_environ(tmp_path / "a")}
    plain = airflow_env.template_db(base)
    assert plain is not None and plain.parent == tmp_path / "cache" / "airflow"
    # the settings that name the home do not change what a migration writes
    assert airflow_env.template_db({**base, **airflow_env.airflow_environ(tmp_path / "b")}) == plain
    sized = airflow_env.template_db({**base, "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "7"})
    assert sized not in (None, plain)

    monkeypatch.setattr("importlib.metadata.version", lambda name: "9.9.9")
    assert airflow_env.template_db(base).name.startswith("airflow-9.9.9-")


def test_without_a_writable_cache_no_template_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(config, "CACHE_ROOT", blocker / "cache")
    assert airflow_env.template_db({}) is None
