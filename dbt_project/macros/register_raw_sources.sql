{#-
    Make `source('raw', 'users'|'events')` readable on every target, so the staging models are
    the same SQL everywhere. Called by the project's on-run-start hook.

    - DuckDB: nothing to do. dbt-duckdb reads a source with `meta.external_location` (see
      models/staging/_sources.yml) straight from the file.
    - Spark: dbt-spark ignores that meta key and renders the source as `raw.users`, so we
      (re)create `raw.users` and `raw.events` as *external* tables over the same files: the
      data stays where it is (dropping the table never deletes the file) and every run points
      them at this run's raw folder (SANDBOX_RAW_DIR). A CSV is read with its header and no schema inference,
      so every column is a string, like DuckDB's `all_varchar=true`; staging does the casts.
      Parquet keeps the file's own types.

    A dispatched macro rather than a `source()` override: `source()` keeps dbt's own lineage,
    docs and freshness behaviour, and the only Spark-specific thing is this one set-up step.
-#}
{% macro register_raw_sources() -%}
    {{ return(adapter.dispatch('register_raw_sources')()) }}
{%- endmacro %}

{% macro default__register_raw_sources() -%}
{%- endmacro %}

{% macro spark__register_raw_sources() -%}
    {%- if execute -%}
        {%- set raw = graph.sources.values() | selectattr('source_name', 'equalto', 'raw') | list -%}
        {%- set folder = env_var('SANDBOX_RAW_DIR', '../data/seed') -%}
        {%- set format = var('raw_format', 'csv') -%}
        {%- if format not in ('csv', 'parquet') -%}
            {{ exceptions.raise_compiler_error("var 'raw_format' must be csv or parquet, got '" ~ format ~ "'") }}
        {%- endif -%}
        {%- for schema in raw | map(attribute='schema') | unique -%}
            {%- do run_query('create database if not exists ' ~ schema) -%}
        {%- endfor -%}
        {%- for node in raw -%}
            {%- set path = dbt.escape_single_quotes(folder ~ '/' ~ node.name ~ '.' ~ format) -%}
            {%- do run_query('drop table if exists ' ~ node.schema ~ '.' ~ node.identifier) -%}
            {%- if format == 'csv' -%}
                {#- RFC 4180, as DuckDB reads it: "" escapes a quote, quoted fields may hold
                    newlines, a missing value is NULL, and a row with the wrong number of
                    fields fails the read (FAILFAST) instead of being patched with NULLs. -#}
                {%- set options -%}
                    path '{{ path }}', header 'true', inferSchema 'false', sep ',',
                    quote '"', escape '"', multiLine 'true', encoding 'UTF-8', mode 'FAILFAST'
                {%- endset -%}
            {%- else -%}
                {%- set options = "path '" ~ path ~ "'" -%}
            {%- endif -%}
            {%- do run_query(
                'create table ' ~ node.schema ~ '.' ~ node.identifier
                ~ ' using ' ~ format ~ ' options (' ~ options ~ ')'
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
