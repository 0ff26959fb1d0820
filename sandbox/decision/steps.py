"""The decision plane's steps: freeze the inputs, infer (:mod:`~sandbox.decision.pipeline`), publish.
Each step holds the step lock, so a notebook, the CLI and Airflow tasks take turns.
"""

from __future__ import annotations

from datetime import date

from sandbox.config import SandboxError, parse_date
from sandbox.decision import store
from sandbox.decision.pipeline import note_recovered, run_llm_inference
from sandbox.decision.store import utcnow
from sandbox.decision.summary import InferenceSummary
from sandbox.decision.tables import INPUTS, PUBLISHED, STAGING, ensure_tables
from sandbox.warehouse import connect, step_lock, table_exists

# every published date's audited mart rows, by as_of_date (publishing D+1 leaves D's)
SOURCE_MART = "marts.fct_user_features_for_ai_history"


def _check_source(con, as_of: date) -> None:
    """Refuse to freeze a date the data plane has not built, naming the command that builds it."""
    if not table_exists(con, SOURCE_MART):
        raise SandboxError(
            f"{SOURCE_MART} does not exist yet: run `sandbox build --date {as_of}` first"
        )
    found = con.execute(f"select distinct as_of_date from {SOURCE_MART} order by 1").fetchall()
    if (as_of,) not in found:
        built = ", ".join(str(r[0]) for r in found) or "no date (it is empty)"
        raise SandboxError(
            f"{SOURCE_MART} holds {built}, not {as_of}: run `sandbox build --date {as_of}` first"
        )


_FREEZE = f"""
    insert into {INPUTS} by name
    select
        ?::date as execution_date,
        user_id,
        plan_tier,
        user_summary_for_llm,
        substr(sha256(user_summary_for_llm), 1, 16) as input_sha,
        as_of_date as source_as_of_date,
        ? as source_model,
        ?::timestamp as prepared_at
    from {SOURCE_MART}
    where as_of_date = ?
"""
_DROP_STALE_ANSWERS = f"""
    delete from {STAGING} s
    where s.execution_date = ?
      and not exists (
        select 1 from {INPUTS} i
        where i.execution_date = s.execution_date
          and i.user_id = s.user_id
          and i.input_sha = s.input_sha)
"""
_UNPUBLISH_GONE = f"""
    delete from {PUBLISHED} r
    where r.execution_date = ?
      and not exists (select 1 from {STAGING} s
                      where s.execution_date = r.execution_date and s.user_id = r.user_id)
"""
_PUBLISH = f"""
    insert or replace into {PUBLISHED} by name
    select * exclude (mode, input_sha, run_id, created_at, escalation_status),
           created_at as recommended_at
    from {STAGING}
    where execution_date = ?
"""


def _in_one_transaction(con, as_of: date, table: str, statements: list[tuple[str, list]]) -> int:
    """Run ``statements`` in one transaction; return the date's row count in ``table``."""
    con.begin()
    try:
        for sql, args in statements:
            con.execute(sql, args)
        count = con.execute(
            f"select count(*) from {table} where execution_date = ?", [as_of]
        ).fetchone()[0]
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return int(count)


@step_lock("sandbox infer")
def prepare_features(execution_date: date | str) -> int:
    """Freeze ``marts.fct_user_features_for_ai`` into ``decision.inference_inputs`` for the date
    (idempotent); a staged answer whose input changed or whose user left is dropped, so the next
    run redoes exactly those rows. Returns the number of frozen rows."""
    as_of = parse_date(execution_date)
    with connect() as con:
        _check_source(con, as_of)
        ensure_tables(con)
        statements = [
            (f"delete from {INPUTS} where execution_date = ?", [as_of]),
            (_FREEZE, [as_of, SOURCE_MART, utcnow(), as_of]),
            (_DROP_STALE_ANSWERS, [as_of]),
        ]
        return _in_one_transaction(con, as_of, INPUTS, statements)


@step_lock("sandbox infer")
def write_results(execution_date: date | str) -> int:
    """Make the date's ``marts.user_recommendations`` rows equal its staged rows (insert, update,
    delete; idempotent). Returns the date's row count."""

    as_of = parse_date(execution_date)
    with connect() as con:
        ensure_tables(con)
        statements = [(_UNPUBLISH_GONE, [as_of]), (_PUBLISH, [as_of])]
        return _in_one_transaction(con, as_of, PUBLISHED, statements)


@step_lock("sandbox infer")
def infer(execution_date: date | str, **options) -> InferenceSummary:
    """Journal recovery -> prepare_features -> run_llm_inference -> write_results for one date."""
    as_of = parse_date(execution_date)
    recovered = store.ingest_journal()  # before the freeze, which drops answers to old inputs
    prepare_features(as_of)
    summary = run_llm_inference(as_of, **options)
    note_recovered(summary, recovered)
    published = write_results(as_of)
    summary.notes.append(f"marts.user_recommendations holds {published:,} rows for {as_of}")
    return summary
