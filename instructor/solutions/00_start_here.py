"""Worked solutions for 00 · Start here (``tests/course/test_checks.py`` checks them)."""

answers = {
    "decides when the dbt build runs": "control",  # the schedule lives in the DAG
    "computes days_since_last_event": "data",  # intermediate dbt model
    "chooses between Haiku and Sonnet": "decision",  # cost tiers are inference policy
    "refuses a duplicated user id": "data",  # the unique test on staging
    "retries a 429 from the API": "decision",  # the SDK's max_retries, inside the plane
    "blocks inference until the tests passed": "control",  # the ExternalTaskSensor
}

top_sql = """
select recommendation_type
from marts.user_recommendations
where execution_date = '2026-11-01'
group by 1
order by count(*) desc
limit 1
"""
