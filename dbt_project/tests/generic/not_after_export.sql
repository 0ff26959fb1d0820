{#-
    No `column_name` (a sign-up) is later than the export it came in. The export ends at the
    later of the as-of midnight and the day after its newest `export_column` (in
    `export_model`): building a past date (a backfill) still sees later sign-ups, as it should,
    but a sign-up dated after everything the export holds is impossible and fails the gate,
    whether the user has events or not. Portable SQL (dbt's cross-database date macros).
-#}
{% test not_after_export(model, column_name, export_model, export_column) %}

{%- set as_of_at = "cast(" ~ as_of_date() ~ " as " ~ dbt.type_timestamp() ~ ")" -%}
{%- set day_after_newest = dbt.dateadd('day', 1, dbt.date_trunc('day', 'newest_at')) -%}

with

newest as (

    select max({{ export_column }}) as newest_at

    from {{ export_model }}

),

export_end as (

    select
        case
            when newest_at is not null and {{ day_after_newest }} > {{ as_of_at }}
                then {{ day_after_newest }}
            else {{ as_of_at }}
        end as ends_at

    from newest

),

late as (

    select
        {{ column_name }} as late_at,
        export_end.ends_at

    from {{ model }}

    cross join export_end

    where {{ column_name }} >= export_end.ends_at

),

final as (

    select
        late_at,
        concat(
            'at or after ',
            cast(ends_at as {{ dbt.type_string() }}),
            ' UTC, where the export ends (the later of the as-of date {{ var("as_of_date") }}',
            ' and the day after its newest {{ export_column }}): fix the dates in the export'
        ) as problem

    from late

)

select * from final

{% endtest %}
