"""Checks of what a learner found out (planes, gate checks, re-runs, a trace, a drill of their
own), compared with hashes or with what the notebook's own warehouse recorded."""

from __future__ import annotations

from sandbox.config import SHIPPED_AS_OF_DATE
from sandbox.course.verdicts import (
    Blank,
    Miss,
    blank,
    call_each,
    digest,
    exercise,
    number,
    require,
    same_money,
    scalar,
    scratch_copy,
    text,
)

PLANES = ("control", "data", "decision")
# exercise 00.1: digest("00.1", "<responsibility>=<plane>") of each right pair
PLANE_DIGESTS = {
    "decides when the dbt build runs": "4383fb36aa20e831",
    "computes days_since_last_event": "6739f24c694584f3",
    "chooses between Haiku and Sonnet": "65b9eb40a295cf62",
    "refuses a duplicated user id": "a8bdce2e98f927e8",
    "retries a 429 from the API": "44e6ffc5a12180bb",
    "blocks inference until the tests passed": "44b14e4715638ab3",
}


def has_table(name: str) -> bool:
    """True when this notebook's warehouse holds table ``schema.name``."""
    from sandbox.warehouse import connect, table_exists

    with connect(read_only=True) as con:
        return table_exists(con, name)


@exercise("00.1")
def check_planes(answers: dict | None) -> str:
    """Exercise 00.1: which plane owns each responsibility?"""
    if not isinstance(answers, dict) or any(blank(answers.get(k)) for k in PLANE_DIGESTS):
        raise Blank("fill in every value of `answers` with control, data or decision.")
    picked = {k: text(answers[k]) for k in PLANE_DIGESTS}
    odd = [v for v in picked.values() if v not in PLANES]
    if odd:
        raise Miss(f"{odd[0]!r} is not a plane: use control, data or decision.")
    wrong = sum(digest("00.1", f"{k}={v}") != PLANE_DIGESTS[k] for k, v in picked.items())
    if wrong:
        raise Miss(f"{wrong} of {len(picked)} to rethink: ask of each \"is this when, what the "
                   "data is, or what the model does?\"")  # fmt: skip
    return "every responsibility sits in exactly one plane."


_EXAMPLE_DRILL = ("unknown_plan_tier", "accepted_values")
_SAME_CHECK = {
    "model": {"contract", "constraint", "check", "check constraint"},
    "handled": {"none", "nothing", "handled (build passes)", "handled by design"},
}


@exercise("02.1")
def check_gate_explanation(drill_name: str | None, failing_check: str | None) -> str:
    """Exercise 02.1: pick a drill (not the example) and name the check that stops it."""
    from sandbox.data.drills import DRILLS

    if blank(drill_name) or blank(failing_check):
        raise Blank("set `drill_name` and `failing_check` above.")
    name, check = text(drill_name), text(failing_check)
    if name not in DRILLS:
        raise Miss(f"{name!r} is not a drill; pick one of {', '.join(DRILLS)}.")
    if (name, check) == _EXAMPLE_DRILL:
        raise Miss("that is the example in the comment: pick another drill.")
    expected = DRILLS[name].expect
    if check not in _SAME_CHECK.get(expected, set()) | {expected}:
        raise Miss(f"{name} is not stopped by {check!r}: run it with the widget in Step 4 and "
                   "read the first line of the gate's message.")  # fmt: skip
    return f"{name} is stopped by {expected}."


@exercise("02.2")
def check_custom_break(break_raw) -> str:
    """Exercise 02.2: ``break_raw(raw_dir)`` makes ``event_at``'s not_null fail, no drill used."""
    from sandbox.config import DEFAULT_RAW_DIR
    from sandbox.data import GateFailed, build

    if not callable(break_raw):
        raise Blank("define `break_raw(raw_dir)` above.")
    with scratch_copy(DEFAULT_RAW_DIR, "SANDBOX_RAW_DIR") as raw:
        try:
            call_each(break_raw, [(raw,)], "break_raw", "sandbox.data.drills")
        except Blank:  # returning None is what a break does
            pass
        try:
            build(SHIPPED_AS_OF_DATE)
        except GateFailed as exc:
            names = [f"{f.test} on {f.model}.{f.column}" for f in exc.failures]
            if "not_null on staging.stg_user_events.event_at" in names:
                return f"the gate said: {'; '.join(names)}."
            raise Miss(f"the gate failed, but on {'; '.join(names)} instead.") from None
    raise Miss("the build passed: your change did not break anything the gate checks.")


RERUN_DATE = "2026-10-29"  # the date exercise 04.2 asks about: not one the lesson runs


@exercise("04.2")
def check_rerun_requests(execution_date, answer) -> str:
    """Exercise 04.2: the LLM requests of a date's first run and of its re-run, in that order."""
    import pandas as pd

    from sandbox.warehouse import query_df

    require(answer, "set `requests_per_run` to the two numbers, first run first.")
    found = query_df("select llm_requests from ops.pipeline_runs where execution_date = ? and "
                     "status = 'success' order by recorded_at", [str(execution_date)],
                     ).llm_requests.tolist() if has_table("ops.pipeline_runs") else []  # fmt: skip
    if len(found) < 2:
        raise Blank(f"run {execution_date} twice first (as in Steps 3 and 5), then look.")
    if isinstance(answer, pd.DataFrame):
        answer = answer.iloc[:, -1]
    if not isinstance(answer, pd.Series | list | tuple) or len(answer) != 2:
        raise Miss("give two numbers, e.g. `[first, second]` (or the query's frame).")
    mine, want = [int(number(x)) for x in answer], [found[0], found[-1]]
    if mine != want and mine[::-1] == want:
        raise Miss("right numbers, wrong order: order the runs by recorded_at.")
    if mine != want:
        raise Miss(f"read llm_requests of the ops.pipeline_runs rows for {execution_date}.")
    return f"{mine[0]} then {mine[1]}: the re-run found nothing pending, so paid nothing."


TRACED_AFTER = "u000003"  # 05.1 traces the first escalated user after the lesson's one

_TRACE_SQL = """
select r.user_id, r.prompt_version, i.user_summary_for_llm,
       (select sum(c.cost_usd) from decision.llm_calls c
         where c.execution_date = r.execution_date and c.user_id = r.user_id
           and c.status = 'ok' and c.purpose <> 'estimate') as cost_usd
from marts.user_recommendations r
join decision.inference_inputs i using (execution_date, user_id)
where r.execution_date = ? and r.user_id > ?
  and exists (select 1 from decision.llm_calls c where c.execution_date = r.execution_date
              and c.user_id = r.user_id and c.purpose = 'escalation' and c.status = 'ok')
order by r.user_id
limit 1
"""


@exercise("05.1")
def check_trace(execution_date, answer: dict | None) -> str:
    """Exercise 05.1: trace the first escalated user after ``TRACED_AFTER``, every request paid."""
    from sandbox.warehouse import query_df

    keys = ("user_id", "prompt_version", "user_summary_for_llm", "cost_usd")
    if not isinstance(answer, dict) or all(blank(answer.get(k)) for k in keys):
        raise Blank("fill in the four values of `trace` above.")
    found = query_df(_TRACE_SQL, [str(execution_date), TRACED_AFTER]).values.tolist()
    if not found:
        raise Blank(f"no escalated recommendation after {TRACED_AFTER} on {execution_date}: "
                    "run Step 1.")  # fmt: skip
    user, version, summary, cost = found[0]
    if blank(answer.get("user_id")) or text(answer["user_id"]) != user:
        raise Miss(f"user_id: find the first user after {TRACED_AFTER} (by user_id) with a "
                   "request of purpose 'escalation' in decision.llm_calls.")  # fmt: skip
    problems = []
    if blank(answer.get("prompt_version")) or text(answer["prompt_version"]) != version:
        problems.append("prompt_version (marts.user_recommendations)")
    given = answer.get("user_summary_for_llm")
    if blank(given) or " ".join(str(scalar(given)).split()) != summary:
        problems.append("user_summary_for_llm (decision.inference_inputs)")
    if blank(answer.get("cost_usd")) or not same_money(number(answer["cost_usd"]), cost):
        problems.append("cost_usd (every ok request of that user and date, both models)")
    if problems:
        raise Miss("check " + ", ".join(problems) + ".")
    return f"{user}: prompt {version}, every request paid for, traced."
