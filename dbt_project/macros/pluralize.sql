{#- "1 day", "3 days": a count and a noun as readable text, in portable SQL. -#}
{% macro pluralize(count_expr, singular, plural=none) -%}
    concat(
        cast({{ count_expr }} as {{ dbt.type_string() }}),
        case when {{ count_expr }} = 1 then ' {{ singular }}' else ' {{ plural or singular ~ "s" }}' end
    )
{%- endmacro %}
