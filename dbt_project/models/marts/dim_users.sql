{#-
    The user dimension for the as-of date.

    Like every mart it is built as a candidate (marts_candidate.dim_users) and published
    with fct_user_features_for_ai in one transaction once every check passed. The
    `depends_on` hint below builds it after the feature table and its tests, so a failure
    there spends no time on it.
-#}
-- depends_on: {{ ref('fct_user_features_for_ai') }}

with

users as (

    select * from {{ ref('int_users_as_of') }}

),

final as (

    select
        user_id,
        plan_tier,
        country_code,
        signed_up_at,
        days_since_signup,
        as_of_date

    from users

)

select * from final
