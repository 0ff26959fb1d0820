{#-
    Every non-null `column_name` is two upper-case letters A-Z, the shape of an ISO 3166-1
    alpha-2 country code (NL, US). Portable SQL: no regular expressions, whose syntax differs
    between engines; a byte-wise range per character works on DuckDB and Spark alike. The
    failing values are not returned (raw text is user-controlled): `problem` says what is wrong.
-#}
{% test two_letter_code(model, column_name) %}

with

failing as (

    select {{ column_name }} as code

    from {{ model }}

    where {{ column_name }} is not null
        and not (
            length({{ column_name }}) = 2
            and substring({{ column_name }}, 1, 1) between 'A' and 'Z'
            and substring({{ column_name }}, 2, 1) between 'A' and 'Z'
        )

),

final as (

    select
        'not a two-letter country code (ISO 3166-1 alpha-2, upper case, e.g. NL)' as problem

    from failing

)

select * from final

{% endtest %}
