{#-
    The user dimension for the as-of date.

    It is published only after the feature table and all of its tests have passed (the
    `depends_on` hint below orders it after fct_user_features_for_ai), so a failed gate never
    leaves the two marts describing different dates.
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
