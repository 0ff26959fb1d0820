{#-
    The AI-ready feature table: one row per user, and the only thing the decision plane reads.
    `user_summary_for_llm` is the whole context the model gets, built here in SQL so that its
    length (and so its token cost) is predictable, anyone can inspect it in a SQL client, and
    no user-controlled text (event properties) can reach a prompt.
-#}

with

users as (

    select * from {{ ref('int_users_as_of') }}

),

engagement as (

    select * from {{ ref('int_user_engagement_rolling') }}

),

joined as (

    select
        users.user_id,
        users.plan_tier,
        users.signed_up_at,
        users.days_since_signup,
        -- no row in engagement means no events at all: zero, not unknown
        coalesce(engagement.event_count_7d, 0) as event_count_7d,
        coalesce(engagement.distinct_event_types_7d, 0) as distinct_event_types_7d,
        engagement.days_since_last_event,
        engagement.last_event_at,
        users.as_of_date

    from users

    left join engagement
        on users.user_id = engagement.user_id

),

final as (

    select
        user_id,
        plan_tier,
        signed_up_at,
        days_since_signup,
        event_count_7d,
        distinct_event_types_7d,
        days_since_last_event,
        last_event_at,
        as_of_date,
        -- every branch yields a full sentence: no NULL, no "Last active  days ago"
        concat(
            'User has been on the ', plan_tier, ' plan for ',
            {{ pluralize('days_since_signup', 'day') }}, '. ',
            case
                when days_since_last_event is null
                    then 'No activity recorded since signing up.'
                when event_count_7d = 0
                    then concat(
                        'Last active ', {{ pluralize('days_since_last_event', 'day') }},
                        ' ago. No events in the last 7 days.'
                    )
                else concat(
                    'Last active ', {{ pluralize('days_since_last_event', 'day') }}, ' ago. ',
                    'Performed ', {{ pluralize('event_count_7d', 'event') }},
                    ' of ', {{ pluralize('distinct_event_types_7d', 'type') }},
                    ' in the last 7 days.'
                )
            end
        ) as user_summary_for_llm

    from joined

)

select * from final
