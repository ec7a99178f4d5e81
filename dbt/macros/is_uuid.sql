{# True when `column` is a canonical UUID string; regular expressions differ per warehouse. #}
{% macro is_uuid(column) -%}
    {{ return(adapter.dispatch('is_uuid')(column)) }}
{%- endmacro %}

{% macro default__is_uuid(column) -%}
    regexp_like({{ column }}, '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
{%- endmacro %}

{% macro postgres__is_uuid(column) -%}
    ({{ column }} ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
{%- endmacro %}
