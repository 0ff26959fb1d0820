"""Worked solutions for 02 · The quality gate (``tests/test_course.py`` checks them)."""

# Exercise 1: a duplicated user row is caught by the `unique` test on stg_users.user_id.
drill_name = "duplicate_key"
failing_check = "unique"


# Exercise 2: staging casts timestamps with try_cast, so text that is not a timestamp becomes
# NULL — and the not_null test on event_at counts it. Append one such event.
def break_raw(raw_dir):
    with open(raw_dir / "events.csv", "a") as events:
        events.write('99999999,"u000001","login",not-a-timestamp,"{}"\n')
