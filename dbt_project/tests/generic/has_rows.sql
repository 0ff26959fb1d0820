{#-
    The model is not empty. An empty raw file (only a header) would otherwise build "successfully"
    and publish a mart with no users: silent, and worse than failing.
-#}
{% test has_rows(model) %}

select 'the model has no rows' as problem

from (select count(*) as row_count from {{ model }}) as counted

where row_count = 0

{% endtest %}
