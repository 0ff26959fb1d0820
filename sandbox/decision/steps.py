"""The decision plane's steps: freeze the inputs, infer (:mod:`~sandbox.decision.pipeline`), publish.

Each step opens the warehouse for itself and holds the step lock, so a notebook, the CLI and
Airflow tasks take turns. The as-of date is parsed once here (``as_of``, a ``date``).
"""

from __future__ import annotations

from datetime import date

from sandbox.config import SandboxError, parse_date
from sandbox.decision import store
from sandbox.decision.pipeline import note_recovered, run_llm_inference
from sandbox.decision.store import utcnow
from sandbox.decision.summary import InferenceSummary
from sandbox.decision.tables import INPUTS, PUBLISHED, STAGING, ensure_tables
from sandbox.warehouse import connect, holds_step, table_exists

SOURCE_MART = "marts.fct_user_features_for_ai_history"
"""Every published date's audited mart rows, keyed by ``as_of_date`` (publishing D+1 leaves D's)."""

_ANSWER_COLUMNS = (
    "recommendation_type",
    "recommendation_text",
    "confidence_score",
    "reasoning",
    "model",
    "prompt_version",
    "escalated",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)


def _check_source(con, as_of: date) -> None:
    """Refuse to freeze a date the data plane has not built, naming the command that builds it."""
    if not table_exists(con, SOURCE_MART):
        raise SandboxError(
            f"{SOURCE_MART} does not exist yet: run `sandbox build --date {as_of}` first"
        )
    dates = [
        r[0]
        for r in con.execute(f"select distinct as_of_date from {SOURCE_MART} order by 1").fetchall()
    ]
    if as_of not in dates:
        built = ", ".join(str(d) for d in dates) or "no date (it is empty)"
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
    insert into {PUBLISHED} by name
    select user_id, execution_date, {", ".join(_ANSWER_COLUMNS)}, created_at as recommended_at
    from {STAGING}
    where execution_date = ?
    on conflict (user_id, execution_date) do update set
    {", ".join(f"{c} = excluded.{c}" for c in (*_ANSWER_COLUMNS, "recommended_at"))}
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


@holds_step("sandbox infer")
def prepare_features(execution_date: date | str) -> int:
    """Freeze ``marts.fct_user_features_for_ai`` into ``decision.inference_inputs`` for the date.

    Idempotent (one transaction); a staged answer whose input changed or whose user left is
    dropped, so the next run redoes exactly those rows. Returns the number of frozen rows.
    """
    as_of = parse_date(execution_date)
    with connect() as con:
        _check_source(con, as_of)
        ensure_tables(con)
        freeze = [as_of, SOURCE_MART, utcnow(), as_of]
        return _in_one_transaction(
            con,
            as_of,
            INPUTS,
            [
                (f"delete from {INPUTS} where execution_date = ?", [as_of]),
                (_FREEZE, freeze),
                (_DROP_STALE_ANSWERS, [as_of]),
            ],
        )


@holds_step("sandbox infer")
def write_results(execution_date: date | str) -> int:
    """Upsert the date's staged answers into ``marts.user_recommendations`` (idempotent).

    The date's rows end up equal to its staged rows (insert new, update changed, delete rows
    no longer staged), so a second call changes nothing. Returns the date's row count.
    """
    as_of = parse_date(execution_date)
    with connect() as con:
        ensure_tables(con)
        statements = [(_UNPUBLISH_GONE, [as_of]), (_PUBLISH, [as_of])]
        return _in_one_transaction(con, as_of, PUBLISHED, statements)


@holds_step("sandbox infer")
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
