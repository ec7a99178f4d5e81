{# The newest `column` value this incremental model already holds, or a date before
   any data when it holds none: the rows past it are the ones to add. #}
{% macro high_water_mark(column) -%}
    {{ newest(column, this) }}
{%- endmacro %}

{# The newest loaded_at that gold.fct_plays holds, or a date before any data: the
   int_plays__first_of_* models read the plays past it. They cannot keep a mark of
   their own, since a batch that brings no new key adds no row to them; and reading a
   batch again (after fct_plays failed) is harmless there, since a key is added once.
   fct_plays is named, not ref()'d: it is built from these models, after them. #}
{% macro plays_in_gold_through() -%}
    {%- set fct = adapter.get_relation(database=this.database, schema='gold', identifier='fct_plays') if execute else none -%}
    {%- if fct is none -%}
        {{ timestamp_literal(before_any_data()) }}
    {%- else -%}
        {{ newest('loaded_at', fct) }}
    {%- endif -%}
{%- endmacro %}

{# max(column) of relation as a literal, read when the model runs: a planner that sees
   `loaded_at > <literal>` estimates the batch from the index's actual end and reads
   it through the index, where `loaded_at > (select max(...))` is a parameter it must
   guess at (a third of the table: a sequential scan of millions of rows each run). A
   unit test has no such relation to read, so it keeps the subquery. #}
{% macro newest(column, relation) -%}
    {%- if execute and model.resource_type != 'unit_test' -%}
        {%- set found = run_query('select max(' ~ column ~ ') from ' ~ relation) -%}
        {%- set value = found.columns[0].values()[0] if found is not none else none -%}
        {{ timestamp_literal(value.isoformat() if value is not none else before_any_data()) }}
    {%- else -%}
        (select coalesce(max({{ column }}), {{ timestamp_literal(before_any_data()) }}) from {{ relation }})
    {%- endif -%}
{%- endmacro %}

{# The mark of a table that holds nothing yet: an instant before any play. #}
{% macro before_any_data() -%}
    {{ return('1900-01-01T00:00:00+00:00') }}
{%- endmacro %}

{# An ISO 8601 instant with its offset as a timestamp-with-time-zone literal. #}
{% macro timestamp_literal(iso) -%}
    {{ return(adapter.dispatch('timestamp_literal')(iso)) }}
{%- endmacro %}

{% macro default__timestamp_literal(iso) -%}
    cast('{{ iso }}' as timestamp with time zone)
{%- endmacro %}

{% macro snowflake__timestamp_literal(iso) -%}
    to_timestamp_tz('{{ iso }}')
{%- endmacro %}
