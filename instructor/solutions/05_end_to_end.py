"""Worked solutions for 05 · End to end (``tests/course/test_checks.py`` checks them)."""

# Exercise 1: every table is keyed by (execution_date, user_id), so one join per hop. The
# escalated users are those with a request of purpose 'escalation' in the ledger; the total
# cost sums both of their requests.
escalated_sql = """
select min(user_id) from decision.llm_calls
where execution_date = '2026-11-01' and purpose = 'escalation' and status = 'ok'
  and user_id > 'u000003'
"""
trace_sql = """
select r.user_id, r.prompt_version, i.user_summary_for_llm,
       (select sum(c.cost_usd) from decision.llm_calls c
         where c.execution_date = r.execution_date and c.user_id = r.user_id
           and c.status = 'ok' and c.purpose <> 'estimate') as cost_usd
from marts.user_recommendations r
join decision.inference_inputs i using (execution_date, user_id)
where r.execution_date = '2026-11-01' and r.user_id = '{user}'
"""

# Exercise 2: a new mart with a data test, e.g. quiet users per plan tier (write both files
# into the copied project, then run the pipeline with SANDBOX_DBT_PROJECT_DIR pointing at it).
new_model = "fct_quiet_users_per_plan"
new_model_sql = """
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
new_model_yml = """
version: 2

models:
  - name: fct_quiet_users_per_plan
    columns:
      - name: plan_tier
        data_tests: [not_null, unique]
"""
