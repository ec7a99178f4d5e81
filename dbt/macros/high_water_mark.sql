{# The newest `column` value this incremental model already holds, or a date before
   any data when it holds none: the rows past it are the ones to add. #}
{% macro high_water_mark(column) -%}
    (select coalesce(max({{ column }}), {{ dbt.cast("'1900-01-01 00:00:00+00'", api.Column.translate_type('timestamp')) }}) from {{ this }})
{%- endmacro %}
