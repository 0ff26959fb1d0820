"""Worked solutions for 05 · End to end (``tests/test_course.py`` checks them)."""

# Exercise 1: every table is keyed by (execution_date, user_id), so one join per hop.
trace_user = "u000010"
trace_sql = """
select r.prompt_version, i.user_summary_for_llm,
       (select sum(c.cost_usd) from decision.llm_calls c
         where c.execution_date = r.execution_date and c.user_id = r.user_id
           and c.status = 'ok' and c.purpose <> 'estimate') as cost_usd
from marts.user_recommendations r
join decision.inference_inputs i using (execution_date, user_id)
where r.execution_date = '2026-11-01' and r.user_id = 'u000010'
"""

# Exercise 2: a new mart, e.g. users per plan tier (write it into the copied project).
new_model = "fct_users_per_plan"
new_model_sql = """
with

features as (

    select * from {{ ref('fct_user_features_for_ai') }}

),

final as (

    select
        plan_tier,
        count(*) as users,
        sum(event_count_7d) as events_7d

    from features

    group by plan_tier

)

select * from final
"""
