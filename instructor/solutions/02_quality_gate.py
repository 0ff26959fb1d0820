"""Worked solutions for 02 · The quality gate (``tests/course/test_checks.py`` checks them)."""

# Exercise 1: a duplicated user row is caught by the `unique` test on stg_users.user_id.
drill_name = "duplicate_key"
failing_check = "unique"


# Exercise 2: staging casts timestamps with try_cast, so text that is not a timestamp becomes
# NULL — and the not_null test on event_at counts it. Append one such event.
def break_raw(raw_dir):
    with open(raw_dir / "events.csv", "a") as events:
        events.write('99999999,"u000001","login",not-a-timestamp,"{}"\n')


# Exercise 3: a mart of "quiet" users (no event in the last 7 days), one row per plan tier.
# Its data tests guard the key and the count; its unit test feeds three hand-written users
# and states the one row they must give — so a change to the rule fails in CI, not in prod.
my_model = "fct_quiet_users_per_plan"
my_model_sql = """
with

features as (

    select * from {{ ref('fct_user_features_for_ai') }}

),

final as (

    select
        plan_tier,
        count(*) as quiet_users

    from features

    where event_count_7d = 0

    group by plan_tier

)

select * from final
"""
my_model_yml = """
version: 2

models:
  - name: fct_quiet_users_per_plan
    description: Users with no event in the last 7 days, per plan tier.
    columns:
      - name: plan_tier
        data_tests:
          - not_null
          - unique
      - name: quiet_users
        data_tests:
          - not_null

unit_tests:
  - name: test_quiet_users_are_counted_per_plan
    model: fct_quiet_users_per_plan
    given:
      - input: ref('fct_user_features_for_ai')
        rows:
          - {user_id: "a", plan_tier: "pro", event_count_7d: 0}
          - {user_id: "b", plan_tier: "pro", event_count_7d: 0}
          - {user_id: "c", plan_tier: "pro", event_count_7d: 3}
    expect:
      rows:
        - {plan_tier: "pro", quiet_users: 2}
"""
