"""Worked solutions for 03 · The decision plane (``tests/course/test_checks.py`` checks them)."""

# Exercise 1: the fake's rules table, top to bottom: the first rule that matches decides.
# "Last active" decides before the 7-day counts; no activity ever decides before anything.
import re


def predict_type(summary):
    plan = re.search(r"on the (\w+) plan for (\d+) day", summary)
    days_on_plan = int(plan.group(2))
    if "No activity recorded" in summary:
        return "feature_discovery" if days_on_plan < 14 else "churn_risk"
    last = int(re.search(r"Last active (\d+) day", summary).group(1))
    if last >= 14:
        return "churn_risk"
    if "No events in the last 7 days" in summary:
        return "re_engagement"
    events = int(re.search(r"Performed (\d+) event", summary).group(1))
    if plan.group(1) in ("free", "starter") and events >= 20:
        return "upgrade_prompt"
    return "feature_discovery"


# Exercise 2: the ledger has one row per request; escalations are purpose = 'escalation'.
escalation_sql = """
select sum(cost_usd)
from decision.llm_calls
where purpose = 'escalation' and execution_date = '2026-11-01'
"""


# Exercise 3: one structured request, then the same checks the engine makes — stop_reason,
# JSON, pydantic — in `parse_answer`, which raises InvalidAnswer for a bad answer.
def recommend_one(client, summary):
    from sandbox.decision.pricing import load_price_book
    from sandbox.decision.prompt import OUTPUT_SCHEMA, SYSTEM_PROMPT, parse_answer

    model = load_price_book().get(load_price_book().primary)
    message = client.messages.create(
        model=model.id,
        max_tokens=300,
        system=SYSTEM_PROMPT,
        messages=[{"role": "user", "content": f"<user_summary>{summary}</user_summary>"}],
        output_config={"format": {"type": "json_schema", "schema": OUTPUT_SCHEMA}},
        thinking={"type": "disabled"},  # Claude Haiku 5.5 thinks first unless told not to
    )
    return parse_answer(message)
