{#- `value` as a SQL string literal: single quotes doubled, so no character of it (a quote,
    a semicolon, a comment marker) can end the literal. Used for the raw folder's path. -#}
{% macro sql_string(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}
