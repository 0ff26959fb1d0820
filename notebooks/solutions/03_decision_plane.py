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
