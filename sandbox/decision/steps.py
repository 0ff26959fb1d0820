"""The decision plane's steps: freeze the inputs, infer (:mod:`~sandbox.decision.pipeline`), publish;
and the deliberate rollout of a new prompt or model (``--reprocess prompt``). Each step holds
the step lock, so a notebook, the CLI and Airflow tasks take turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sandbox.config import SandboxError, parse_date
from sandbox.decision import store
from sandbox.decision.pipeline import note_recovered, run_llm_inference
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import PROMPT_VERSION
from sandbox.decision.store import utcnow
from sandbox.decision.summary import InferenceSummary
from sandbox.decision.tables import INPUTS, PUBLISHED, STAGING, SUPERSEDED, ensure_tables
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


@dataclass
class ReprocessResult:
    """What a prompt rollout did for one date."""

    execution_date: date
    stale: int
    kept_old: int
    summary: InferenceSummary

    @property
    def exit_code(self) -> int:
        """0 when every stale row got a new answer and the run was clean, 3 otherwise."""
        return 3 if self.kept_old or self.summary.exit_code else 0

    def render(self) -> str:
        """The inference summary plus what the rollout changed."""
        return (
            f"{self.summary.render()}\nreprocess prompt: {self.stale:,} row(s) of "
            f"{self.execution_date} were answered under another prompt_version or model; "
            f"{self.stale - self.kept_old:,} re-asked under {PROMPT_VERSION}, {self.kept_old:,} "
            f"kept their old answer (run again to retry them); old answers are in {SUPERSEDED}"
        )


def reprocess_prompt(
    execution_date: date | str,
    *,
    model: str | None = None,
    escalate: bool = True,
    mode: str = "realtime",
    **kwargs,
) -> ReprocessResult:
    """Re-ask the date's rows answered under another prompt_version or model (idempotent): supersede
    them, re-ask within the budget, put back any row with no new answer, publish."""
    day = parse_date(execution_date)
    if mode != "realtime":
        raise SandboxError(
            "--reprocess prompt runs in realtime mode only (a batch still processing would race "
            "with putting back the rows it did not answer): drop --mode batch"
        )
    # stale: answered under another prompt_version, or by a model the settings no longer use
    book = load_price_book()
    models = [book.get(model or book.primary).id, *([book.escalation] if escalate else [])]
    where = f"execution_date = ? and (prompt_version <> ? or model not in ({', '.join('?' * len(models))}))"
    params = [PROMPT_VERSION, *models]
    with step_lock("sandbox infer --reprocess prompt"):
        with connect() as con:
            ensure_tables(con, STAGING, SUPERSEDED)
            con.begin()
            [stale] = con.execute(
                f"insert into {SUPERSEDED} select *, now()::timestamp from {STAGING} where {where}",
                [day, *params],
            ).fetchone()
            con.execute(f"delete from {STAGING} where {where}", [day, *params])
            con.commit()
        try:
            summary = run_llm_inference(day, model=model, escalate=escalate, mode=mode, **kwargs)
        finally:
            kept_old = _restore_unanswered(day)
        write_results(day)
    return ReprocessResult(day, stale, kept_old, summary)


def _restore_unanswered(day: date) -> int:
    """Put back the newest superseded answer of every user of ``day`` with none staged now."""
    with connect() as con:
        [restored] = con.execute(
            f"""
            insert into {STAGING} by name
            select * exclude (superseded_at, newest) from (
                select *, row_number() over (
                    partition by user_id order by superseded_at desc
                ) as newest
                from {SUPERSEDED} o
                where execution_date = ?
                  and not exists (
                      select 1 from {STAGING} s
                      where s.execution_date = o.execution_date and s.user_id = o.user_id
                  )
            ) where newest = 1
            """,
            [day],
        ).fetchone()
    return int(restored)
