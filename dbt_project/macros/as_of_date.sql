{#- The run's as-of date as a SQL date literal. Every model that needs "today" calls this
    instead of CURRENT_DATE, so building a past date (a backfill) gives the same answer every
    time. The value comes from `--vars '{as_of_date: YYYY-MM-DD}'` (Airflow passes `ds`). -#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none -%}
        {{ exceptions.raise_compiler_error("var 'as_of_date' is not set: pass --vars '{as_of_date: YYYY-MM-DD}' (sandbox build --date does it for you)") }}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value | string) -%}
        {{ exceptions.raise_compiler_error("var 'as_of_date' must be YYYY-MM-DD, got '" ~ value ~ "'") }}
    {%- endif -%}
    cast('{{ value }}' as date)
{%- endmacro %}
