{#-
    Users as they stood at the start of `as_of_date`: only those who had signed up by then
    (a backfill for a past date must not see later sign-ups), with their tenure in days.
-#}

with

users as (

    select * from {{ ref('stg_users') }}

),

final as (

    select
        user_id,
        plan_tier,
        country_code,
        signed_up_at,
        cast(
            {{ dbt.datediff('signed_up_at', as_of_date(), 'day') }} as {{ dbt.type_bigint() }}
        ) as days_since_signup,
        {{ as_of_date() }} as as_of_date

    from users

    where signed_up_at < {{ as_of_date() }}

)

select * from final
