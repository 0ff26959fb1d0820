"""Rolling out a new prompt or model deliberately: re-ask a date's rows answered under an older one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sandbox.config import SandboxError, parse_date
from sandbox.decision.pipeline import run_llm_inference
from sandbox.decision.pricing import load_price_book
from sandbox.decision.prompt import PROMPT_VERSION
from sandbox.decision.steps import write_results
from sandbox.decision.summary import InferenceSummary
from sandbox.decision.tables import STAGING, SUPERSEDED, ensure_tables
from sandbox.warehouse import connect, step_lock


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


def _stale_where(model: str | None, escalate: bool) -> tuple[str, list]:
    """The SQL condition (and its parameters after the date) of a row answered under another
    prompt_version or by a model the current settings no longer use."""
    book = load_price_book()
    models = [
        book.get(model or book.primary).id,
        *([book.escalation] if escalate else []),
    ]
    marks = ", ".join("?" for _ in models)
    where = f"execution_date = ? and (prompt_version <> ? or model not in ({marks}))"
    return where, [PROMPT_VERSION, *models]


def reprocess_prompt(
    execution_date: date | str,
    *,
    model: str | None = None,
    escalate: bool = True,
    mode: str = "realtime",
    **kwargs,
) -> ReprocessResult:
    """Re-ask the date's rows answered under another prompt_version or model (idempotent).

    Supersedes those rows, re-asks them within the budget, puts back any row that got no new
    answer, then publishes; realtime mode only.
    """
    day = parse_date(execution_date)
    if mode != "realtime":
        raise SandboxError(
            "--reprocess prompt runs in realtime mode only (a batch still processing would race "
            "with putting back the rows it did not answer): drop --mode batch"
        )
    where, params = _stale_where(model, escalate)
    with step_lock("sandbox infer --reprocess prompt"):
        with connect() as con:
            ensure_tables(con, STAGING, SUPERSEDED)
            con.execute("begin")
            stale = con.execute(
                f"select count(*) from {STAGING} where {where}", [day, *params]
            ).fetchone()[0]
            con.execute(
                f"insert into {SUPERSEDED} select *, now()::timestamp from {STAGING} where {where}",
                [day, *params],
            )
            con.execute(f"delete from {STAGING} where {where}", [day, *params])
            con.execute("commit")
        try:
            summary = run_llm_inference(day, model=model, escalate=escalate, mode=mode, **kwargs)
        finally:
            kept_old = _restore_unanswered(day)
        write_results(day)
    return ReprocessResult(day, stale, kept_old, summary)


def _restore_unanswered(day: date) -> int:
    """Put back the newest superseded answer of every user of ``day`` with none staged now."""
    with connect() as con:
        restored = con.execute(
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
    return int(restored[0]) if restored else 0
