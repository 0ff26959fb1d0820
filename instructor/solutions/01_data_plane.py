"""Worked solutions for 01 · The data plane (``tests/course/test_checks.py`` checks them)."""

# Exercise 1: "no event in the last 7 days" is event_count_7d = 0; "active in the last 30" is
# a last event at most 30 days ago. Users with no events at all have a NULL
# days_since_last_event, so the comparison drops them, as it should.
answer_sql = """
select user_id
from marts.fct_user_features_for_ai
where event_count_7d = 0
  and days_since_last_event <= 30
"""

# Exercise 2: the mart's summary, rewritten in Python. A count is followed by its noun,
# singular only for exactly 1 (the pluralize macro); no events ever means no "Last active".


def _count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def summarize(plan_tier, days_since_signup, days_since_last_event, event_count_7d,
              distinct_event_types_7d):  # fmt: skip
    head = f"User has been on the {plan_tier} plan for {_count(days_since_signup, 'day')}. "
    if days_since_last_event is None:
        return head + "No activity recorded since signing up."
    last = f"Last active {_count(days_since_last_event, 'day')} ago. "
    if event_count_7d == 0:
        return head + last + "No events in the last 7 days."
    return head + last + (
        f"Performed {_count(event_count_7d, 'event')} of "
        f"{_count(distinct_event_types_7d, 'type')} in the last 7 days."
    )
