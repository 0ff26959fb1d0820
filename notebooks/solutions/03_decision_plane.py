"""Worked solutions for 03 · The decision plane (``tests/test_course.py`` checks them)."""

# Exercise 1: "Last active 22 days ago" matches rule 4 (last active 14 to 29 days ago) before
# any rule about the 7-day counts: churn_risk at 0.80.
summary = (
    "User has been on the pro plan for 400 days. Last active 22 days ago. "
    "No events in the last 7 days."
)
predicted_type = "churn_risk"

# Exercise 2: the ledger has one row per request; escalations are purpose = 'escalation'.
escalation_sql = """
select sum(cost_usd)
from decision.llm_calls
where purpose = 'escalation' and execution_date = '2026-11-01'
"""
