{#-
    An event more than a day before its user signed up is a tracking or a join bug, not
    behaviour: fail the gate. (One day of slack absorbs client clock skew.) `problem` names
    both sides: the events' and the users' raw file and column.
-#}
with

events as (

    select * from {{ ref('stg_user_events') }}

),

users as (

    select * from {{ ref('stg_users') }}

),

early as (

    select
        events.event_id,
        events.user_id,
        events.event_at,
        users.signed_up_at

    from events

    inner join users
        on events.user_id = users.user_id

    where events.event_at < {{ dbt.dateadd('day', -1, 'users.signed_up_at') }}

),

final as (

    select
        event_id,
        user_id,
        event_at,
        signed_up_at,
        concat(
            'staging.stg_user_events.event_at (events file, column created_at) more than a',
            ' day before staging.stg_users.signed_up_at (users file, column signed_up_at) of',
            ' the same user: a sign-up dated too late, or events given to the wrong user'
        ) as problem

    from early

)

select * from final
