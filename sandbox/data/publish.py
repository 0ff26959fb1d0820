"""Write-audit-publish: move a build's audited candidate marts to the published ones.

:func:`publish` moves ``marts_candidate`` to ``marts`` in one DuckDB transaction (all or
none); ``marts.<name>_history`` keeps every published date, ``marts.<name>`` the last one.
"""

from __future__ import annotations

from datetime import date

from sandbox.config import SandboxError, warehouse_path
from sandbox.warehouse import connect

CANDIDATE_SCHEMA = "marts_candidate"
PUBLISHED_SCHEMA = "marts"
DATE_COLUMN = "as_of_date"
CORE_MARTS = ("marts.fct_user_features_for_ai", "marts.dim_users")  # those a gate message names


class PublishFailed(SandboxError):
    """Every check passed but the publishing transaction failed; nothing was published."""


def published_name(relation: str) -> str:
    """``marts_candidate.x`` -> ``marts.x``; any other relation unchanged."""
    schema, _, name = relation.partition(".")
    return f"{PUBLISHED_SCHEMA}.{name}" if schema == CANDIDATE_SCHEMA else relation


def _columns(con, relation: str) -> dict[str, str]:
    sql = (
        "select column_name, data_type from information_schema.columns where table_catalog = "
        "current_database() and table_schema || '.' || table_name = ? order by ordinal_position"
    )
    return dict(con.execute(sql, [relation]).fetchall())


def _drop(con, relation: str, keep: str) -> None:
    """Drop ``relation`` when it exists as another kind than ``keep`` (a table or a view)."""
    sql = (
        "select table_type from information_schema.tables where table_catalog = "
        "current_database() and table_schema || '.' || table_name = ?"
    )
    found = con.execute(sql, [relation]).fetchone()
    if found and found[0] != keep:
        con.execute(f"drop {'view' if found[0] == 'VIEW' else 'table'} {relation}")


def publish(as_of: date, candidates: list[str]) -> None:
    """Publish the audited ``candidates`` for ``as_of`` in one transaction."""
    with connect() as con:
        con.begin()
        try:
            con.execute(f"create schema if not exists {PUBLISHED_SCHEMA}")
            for candidate in candidates:
                target = published_name(candidate)
                columns = _columns(con, candidate)
                if DATE_COLUMN in columns:
                    _publish_dated(con, as_of, candidate, target, columns)
                else:
                    _drop(con, target, keep="BASE TABLE")
                    con.execute(f"create or replace table {target} as select * from {candidate}")
            con.commit()
        except BaseException as exc:
            con.rollback()
            if isinstance(exc, SandboxError) or not isinstance(exc, Exception):
                raise
            raise PublishFailed(
                f"every check passed for {as_of}, but publishing failed and was rolled back, so "
                f"the published marts are as they were: {' '.join(str(exc).split())}. Fix the "
                "cause (e.g. a column type that changed: drop the marts.*_history table it "
                f"names), then build again ({warehouse_path()})."
            ) from None


def _publish_dated(con, as_of: date, candidate: str, target: str, columns: dict) -> None:
    """Replace date ``as_of`` in the mart's history (new columns added, NULL for older dates)
    and make ``target`` the view of that date's rows (the rows are written once)."""
    history = f"{target}_history"
    other = con.execute(
        f"select count(*) from {candidate} where {DATE_COLUMN} is distinct from ?", [as_of]
    ).fetchone()[0]
    if other:
        raise PublishFailed(
            f"{candidate} has {other} rows whose {DATE_COLUMN} is not {as_of}, so publishing "
            "it would write into other dates' history; nothing was published. A mart's "
            "as_of_date must be {{ as_of_date() }} (see models/marts/)."
        )
    con.execute(f"create table if not exists {history} as select * from {candidate} limit 0")
    have = _columns(con, history)
    for column, kind in columns.items():
        if column not in have:
            con.execute(f'alter table {history} add column "{column}" {kind}')
    con.execute(f"delete from {history} where {DATE_COLUMN} = ?", [as_of])
    con.execute(f"insert into {history} by name select * from {candidate}")
    _drop(con, target, keep="VIEW")
    listed = ", ".join(f'"{c}"' for c in columns)
    con.execute(
        f"create or replace view {target} as select {listed} from {history} "
        f"where {DATE_COLUMN} = date '{as_of.isoformat()}'"
    )


def publish_spark(as_of: date, candidates: list[str]) -> None:
    """Publish the audited candidates on Spark, one table after the other (no history): Spark has
    no transaction across tables, so a crash can leave them on different ``as_of_date``s."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()  # the session dbt used, not a new one
    spark.sql(f"create database if not exists {PUBLISHED_SCHEMA}")
    for candidate in candidates:
        target = published_name(candidate)
        spark.sql(f"drop table if exists {target}")
        spark.sql(f"create table {target} using parquet as select * from {candidate}")


def published_now(target: str) -> str:
    """What the published marts hold now, as a clause for a GateFailed message."""
    if target != "duckdb":
        return "the published Spark marts were not touched"
    if not warehouse_path().exists():
        return "nothing has been published yet"
    shown = {}
    try:
        with connect(read_only=True) as con:
            for name in CORE_MARTS:
                sql = f"select distinct {DATE_COLUMN} from {name} order by 1"
                dates = con.execute(sql).fetchall() if DATE_COLUMN in _columns(con, name) else []
                shown[name] = ", ".join(str(d) for (d,) in dates) or "nothing"
    except SandboxError:
        return "the published marts were not touched"
    values = set(shown.values())
    if values == {"nothing"}:
        return "nothing has been published yet"
    if len(values) == 1:
        return f"{' and '.join(shown)} still hold {values.pop()}, as before this build"
    return "; ".join(f"{name} still holds {value}" for name, value in shown.items())
