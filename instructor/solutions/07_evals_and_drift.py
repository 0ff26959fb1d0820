"""Worked solutions for 07 · Evals and drift (``tests/course/test_golden_exercise.py`` checks them)."""

from pathlib import Path

from sandbox.evals import add_golden_case


def add_exercise_case(my_golden: Path) -> None:
    """Exercise 1: 25 events over the last 7 days, cycling through three event types."""
    kinds = ["login", "create_report", "export_csv"]
    add_golden_case(
        my_golden,
        "g900",
        plan_tier="starter",
        signed_up_days_ago=30,
        events=[(1 + i % 7, kinds[i % 3]) for i in range(25)],
        acceptable=["upgrade_prompt"],
        reason="25 events of 3 types in a week on starter: outgrowing the plan.",
        segment="power",
        case="power_user_on_starter_exercise",
    )
