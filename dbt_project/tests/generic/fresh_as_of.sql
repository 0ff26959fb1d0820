{#-
    Freshness relative to the as-of date: the latest `column_name` before `as_of_date` is at
    most `max_lag_days` days older than the as-of midnight. Measured against the as-of date,
    never the wall clock, so building a past date (a backfill) gets the same verdict every
    time. (dbt's source freshness compares with the time of the run, so it cannot do this.)
    A stalled export, a date after the last delivery (2027-06-01 on the shipped files) or a
    date before any data (1900-01-01) returns one row whose `problem` says what was seen.
-#}
{% test fresh_as_of(model, column_name, max_lag_days=none) %}
{%- set max_lag_days = (var('freshness_max_lag_days', 1) if max_lag_days is none else max_lag_days) | int -%}

with

latest as (

    select max({{ column_name }}) as latest_at

    from {{ model }}

    where {{ column_name }} < {{ as_of_date() }}

),

final as (

    select
        latest_at,
        concat(
            'freshness: the latest {{ column_name }} before {{ var("as_of_date") }} is ',
            case
                when latest_at is null then 'missing (no row before that date)'
                else concat(cast(latest_at as {{ dbt.type_string() }}), ' UTC')
            end,
            '; the limit is ',
            cast({{ dbt.dateadd('day', -1 * max_lag_days, as_of_date()) }} as {{ dbt.type_string() }}),
            ' UTC ({{ max_lag_days }} day{{ "" if max_lag_days == 1 else "s" }} before the',
            ' as-of date, dbt var freshness_max_lag_days)'
        ) as problem

    from latest

    where latest_at is null
        or latest_at < {{ dbt.dateadd('day', -1 * max_lag_days, as_of_date()) }}

)

select * from final

{% endtest %}
