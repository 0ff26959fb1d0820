{#-
    An event more than a day before its user signed up is a tracking or a join bug, not
    behaviour: fail the gate. (One day of slack absorbs client clock skew.)
-#}
with

events as (

    select * from {{ ref('stg_user_events') }}

),

users as (

    select * from {{ ref('stg_users') }}

),

final as (

    select
        events.event_id,
        events.user_id,
        events.event_at,
        users.signed_up_at

    from events

    inner join users
        on events.user_id = users.user_id

    where events.event_at < {{ dbt.dateadd('day', -1, 'users.signed_up_at') }}

)

select * from final
