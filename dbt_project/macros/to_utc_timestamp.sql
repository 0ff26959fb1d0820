{#- A raw timestamp as a zone-less timestamp in UTC, or NULL when it cannot be read.

    Accepts what exports write: `2026-10-31 23:58:01` (no zone: UTC), `2026-10-31T21:58:01Z`,
    `2026-10-31 23:58:01+02:00`, `2026-10-31 23:58:01 Europe/Berlin`, and typed Parquet
    TIMESTAMP (UTC) or TIMESTAMPTZ columns. An unreadable value or an unknown zone gives NULL,
    which the column's not_null test turns into a failed gate naming the raw file and column.
    The session time zone is UTC on both targets (profiles.yml), so nothing depends on the
    machine's TZ. -#}
{% macro to_utc_timestamp(expr) -%}
    {{ return(adapter.dispatch('to_utc_timestamp')(expr)) }}
{%- endmacro %}

{% macro default__to_utc_timestamp(expr) -%}
    {#- Spark parses offsets and zone ids while casting and keeps UTC (session zone). -#}
    cast({{ expr }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro duckdb__to_utc_timestamp(expr) -%}
    timezone('UTC', try_cast({{ expr }} as timestamptz))
{%- endmacro %}
