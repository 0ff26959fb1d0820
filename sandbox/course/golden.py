"""Exercise 07.1, build it: a golden case of your own, built through dbt and evaluated."""

from __future__ import annotations

from pathlib import Path

from sandbox.course.verdicts import Blank, Miss, digest, exercise

NEW_CASE_ID = "g900"  # the id the exercise asks for
PREFERRED_DIGEST = "6878fb89b5aec777"  # digest("07.1", the case's preferred type)


@exercise("07.1")
def check_new_golden_case(folder: Path | str) -> str:
    """Exercise 07.1: a starter user, 30 days on the plan, 25 events of 3 types this week."""
    from sandbox.evals.golden import load_golden
    from sandbox.evals.runner import run_eval

    golden = load_golden(folder)
    case = next((c for c in golden.cases if c.user_id == NEW_CASE_ID), None)
    if case is None:  # nothing added yet: a blank, not a miss
        raise Blank(
            f"no {NEW_CASE_ID} in {Path(folder).name}/labels.csv: call add_golden_case(my_golden, "
            f"'{NEW_CASE_ID}', ...) once (each call appends to users.csv, events.csv and labels.csv)",
        )
    wanted = "User has been on the starter plan for 30 days."
    if not case.summary.startswith(wanted):
        raise Miss(
            f"dbt wrote {case.summary!r}: check plan_tier and signed_up_days_ago (days before "
            "2026-11-01)"
        )
    if "Performed 25 events of 3 types in the last 7 days." not in case.summary:
        raise Miss(
            f"dbt wrote {case.summary!r}: you need 25 events between 1 and 7 days ago, using "
            "exactly 3 distinct event types (e.g. login, create_report, export_csv)"
        )
    if not case.acceptable or digest("07.1", case.acceptable[0]) != PREFERRED_DIGEST:
        raise Miss(
            f"your label prefers {(list(case.acceptable) or [None])[0]!r}: compare with the "
            "labels of the golden set's other heavy users (Step 1) and ask what a reviewer "
            "would want this user offered; the preferred type goes first"
        )
    if len(case.reason) < 10:
        raise Miss("give the label a one-line reason a reviewer can check")
    result = next(
        r for r in run_eval(llm="mock", golden=golden).results if r.user_id == NEW_CASE_ID
    )
    return (f"{NEW_CASE_ID} is a valid mart row ({len(case.summary)} characters) and the offline "
            f"model answered {result.outcome} ({'agrees' if result.agrees else 'disagrees'}) with "
            "your label")  # fmt: skip
