"""The raw-data generator: deterministic, the source of the shipped files, and varied."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from sandbox.config import DEFAULT_RAW_DIR, SandboxError
from sandbox.data import generate


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_seed_gives_same_bytes(tmp_path: Path, fmt: str) -> None:
    generate(users=300, days=30, seed=7, out=tmp_path / "a", fmt=fmt)
    generate(users=300, days=30, seed=7, out=tmp_path / "b", fmt=fmt)
    generate(users=300, days=30, seed=8, out=tmp_path / "c", fmt=fmt)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_shipped_files_come_from_the_generator(tmp_path: Path) -> None:
    generate(users=500, days=60, seed=42, out=tmp_path)
    assert _digest(tmp_path) == _digest(DEFAULT_RAW_DIR), (
        "data/seed differs from `sandbox generate --users 500 --days 60 --seed 42`: "
        "regenerate it with `sandbox generate --out data/seed`"
    )


def test_shipped_data_has_the_edge_cases_the_course_needs() -> None:
    con = duckdb.connect()
    users = f"read_csv('{DEFAULT_RAW_DIR}/users.csv')"
    events = f"read_csv('{DEFAULT_RAW_DIR}/events.csv')"
    n_users, n_tiers = con.execute(
        f"select count(*), count(distinct plan_tier) from {users}"
    ).fetchone()
    assert n_users == 500 and n_tiers == 4
    null_types = con.execute(f"select count(*) from {events} where event_type is null").fetchone()[0]
    assert null_types > 0
    silent = con.execute(
        f"select count(*) from {users} u where not exists (select 1 from {events} e where e.user_id = u.id)"
    ).fetchone()[0]
    quiet_week = con.execute(
        f"""select count(*) from (select user_id from {events} group by 1
            having max(created_at) < timestamp '2026-10-25')"""
    ).fetchone()[0]
    assert silent >= 10 and quiet_week >= 50
    span = con.execute(f"select min(created_at), max(created_at) from {events}").fetchone()
    assert str(span[0]) >= "2026-09-02" and str(span[1]) < "2026-11-01"


def test_parquet_for_large_outputs_by_default(tmp_path: Path) -> None:
    files = generate(users=10_001, days=10, seed=1, out=tmp_path)
    assert files.users_path.suffix == ".parquet" and files.events_path.suffix == ".parquet"
    count = duckdb.connect().execute(f"select count(*) from '{files.events_path}'").fetchone()[0]
    assert count == files.events


def test_switching_format_leaves_one_format_in_the_folder(tmp_path: Path) -> None:
    generate(users=50, days=10, out=tmp_path, fmt="csv")
    generate(users=50, days=10, out=tmp_path, fmt="parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet", "users.parquet"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"users": 0}, "--users"), ({"days": 3}, "--days"), ({"fmt": "xlsx"}, "--format")],
)
def test_bad_arguments_say_what_to_change(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(SandboxError, match=message):
        generate(out=tmp_path, **kwargs)


def test_a_tiny_generated_data_set_passes_the_gate(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 users make ~9 events a day: a quiet last day (3 events here) is noise, not a
    collapse, so the completeness check stands aside (var volume_min_average)."""
    from sandbox.data import build

    generate(users=20, days=30, seed=3, out=tmp_path / "raw", fmt="csv")
    monkeypatch.setenv("SANDBOX_RAW_DIR", str(tmp_path / "raw"))
    assert build("2026-11-01").rows["marts.fct_user_features_for_ai"] > 0
