"""Worked solutions for 01 · The data plane (``tests/test_course.py`` checks them)."""

# Exercise 1: "no event in the last 7 days" is event_count_7d = 0; "active in the last 30" is
# a last event at most 30 days ago. Users with no events at all have a NULL
# days_since_last_event, so the comparison drops them, as it should.
answer_sql = """
select user_id
from marts.fct_user_features_for_ai
where event_count_7d = 0
  and days_since_last_event <= 30
"""

# Exercise 2: u000042 is a starter user, 311 days in, last seen 15 days ago, quiet this week.
# That is the mart's "quiet this week" branch:
predicted = (
    "User has been on the starter plan for 311 days. Last active 15 days ago. "
    "No events in the last 7 days."
)
