{# The newest `column` value this incremental model already holds, or a date before
   any data when it holds none: the rows past it are the ones to add. #}
{% macro high_water_mark(column) -%}
    (select coalesce(max({{ column }}), {{ dbt.cast("'1900-01-01 00:00:00+00'", api.Column.translate_type('timestamp')) }}) from {{ this }})
{%- endmacro %}

{# The newest loaded_at that gold.fct_plays holds, or a date before any data: the
   int_plays__first_of_* models read the plays past it. They cannot keep a mark of
   their own, since a batch that brings no new key adds no row to them; and reading a
   batch again (after fct_plays failed) is harmless there, since a key is added once.
   fct_plays is named, not ref()'d: it is built from these models, after them. #}
{% macro plays_in_gold_through() -%}
    {%- set fct = adapter.get_relation(database=this.database, schema='gold', identifier='fct_plays') if execute else none -%}
    {%- if fct is none -%}
        {{ dbt.cast("'1900-01-01 00:00:00+00'", api.Column.translate_type('timestamp')) }}
    {%- else -%}
        (select coalesce(max(loaded_at), {{ dbt.cast("'1900-01-01 00:00:00+00'", api.Column.translate_type('timestamp')) }}) from {{ fct }})
    {%- endif -%}
{%- endmacro %}
