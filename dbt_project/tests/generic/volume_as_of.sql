{#-
    Completeness relative to the as-of date: the rows of the last day before `as_of_date`
    ([as_of - 1 day, as_of)) are at least `min_ratio` times the daily average of the
    `trailing_days` days before it. A half-delivered export (events only until noon) or an
    empty last day returns one row whose `problem` gives both volumes, the latest
    `column_name` seen and the threshold. A window with no rows at all passes here: that is
    the freshness check's case. So does a trailing daily average under `min_average` (var
    volume_min_average, 20 rows): with a handful of events a day (a 20-user generated data
    set), a quiet day is noise, not a collapse; freshness still applies.
-#}
{% test volume_as_of(model, column_name, min_ratio=none, trailing_days=none, min_average=none) %}
{%- set min_average = (var('volume_min_average', 20) if min_average is none else min_average) | float -%}
{%- set min_ratio = (var('volume_min_ratio', 0.6) if min_ratio is none else min_ratio) | float -%}
{%- set trailing_days = (var('volume_trailing_days', 7) if trailing_days is none else trailing_days) | int -%}

with

last_day_start as (

    select {{ dbt.dateadd('day', -1, as_of_date()) }} as starts_at

),

counted as (

    select
        sum(case when {{ column_name }} >= last_day_start.starts_at then 1 else 0 end) as last_day_rows,
        sum(case when {{ column_name }} < last_day_start.starts_at then 1 else 0 end) as trailing_rows,
        max({{ column_name }}) as latest_at

    from {{ model }}

    cross join last_day_start

    where {{ column_name }} >= {{ dbt.dateadd('day', -1 - trailing_days, as_of_date()) }}
        and {{ column_name }} < {{ as_of_date() }}

),

final as (

    select
        last_day_rows,
        trailing_rows,
        concat(
            'completeness: ', cast(last_day_rows as {{ dbt.type_string() }}),
            ' rows on the day before {{ var("as_of_date") }} against a daily average of ',
            cast(round(trailing_rows / {{ trailing_days }}.0, 1) as {{ dbt.type_string() }}),
            ' over the {{ trailing_days }} days before it; the minimum is {{ min_ratio }} of',
            ' that average (dbt var volume_min_ratio); the latest {{ column_name }} seen is ',
            cast(latest_at as {{ dbt.type_string() }}), ' UTC'
        ) as problem

    from counted

    where trailing_rows >= {{ min_average }} * {{ trailing_days }}
        and last_day_rows < {{ min_ratio }} * trailing_rows / {{ trailing_days }}.0

)

select * from final

{% endtest %}
