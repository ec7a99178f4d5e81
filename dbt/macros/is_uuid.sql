{# True when `column` is a canonical UUID string; regular expressions differ per warehouse. #}
{% macro is_uuid(column) -%}
    {{ return(adapter.dispatch('is_uuid')(column)) }}
{%- endmacro %}

{% macro default__is_uuid(column) -%}
    regexp_like({{ column }}, '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
{%- endmacro %}

{# PostgreSQL's regular expressions are slow with counted repetitions: the pattern
   above cost 7 s on a million rows, most of silver's validation. The same test in
   cheap parts (1.2 s): 36 characters with dashes at the four places, nothing but
   lower-case hex digits and dashes, and no other dash. #}
{% macro postgres__is_uuid(column) -%}
    ({{ column }} like '________-____-____-____-____________'
        and {{ column }} ~ '^[0-9a-f-]+$'
        and length(replace({{ column }}, '-', '')) = 32)
{%- endmacro %}
