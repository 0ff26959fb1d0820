{#-
    Every non-null value of `column_name` is between `min_length` and `max_length` characters.
    A stand-in for dbt_expectations' expect_column_value_lengths_to_be_between, which cannot be
    installed offline. Failing rows are returned with their length, so `dbt test --store-failures`
    shows exactly which rows are too short or too long.
-#}
{% test text_length_between(model, column_name, min_length, max_length) %}

select
    {{ column_name }} as value,
    length({{ column_name }}) as value_length

from {{ model }}

where {{ column_name }} is not null
    and (
        length({{ column_name }}) < {{ min_length }}
        or length({{ column_name }}) > {{ max_length }}
    )

{% endtest %}
