{#-
    Engagement as of the start of `as_of_date` (midnight): the data a 02:00 run can see.
    Events at or after that instant are ignored, so building a past date (a backfill) gives
    the same answer however much data has arrived since. The 7-day window is the seven full
    days before the as-of date: [as_of_date - 7 days, as_of_date).
-#}

with

events as (

    select * from {{ ref('stg_user_events') }}

),

events_before_as_of as (

    select
        user_id,
        event_type,
        event_at,
        case
            when event_at >= {{ dbt.dateadd('day', -7, as_of_date()) }} then 1 else 0
        end as is_in_last_7_days

    from events

    where event_at < {{ as_of_date() }}

),

final as (

    select
        user_id,
        cast(sum(is_in_last_7_days) as {{ dbt.type_bigint() }}) as event_count_7d,
        cast(
            count(distinct case when is_in_last_7_days = 1 then event_type end)
            as {{ dbt.type_bigint() }}
        ) as distinct_event_types_7d,
        max(event_at) as last_event_at,
        cast(
            {{ dbt.datediff('max(event_at)', as_of_date(), 'day') }} as {{ dbt.type_bigint() }}
        ) as days_since_last_event

    from events_before_as_of

    group by user_id

)

select * from final
