{# `as materialized` on PostgreSQL: a common table expression that a query reads more
   than once is computed once. Other warehouses decide for themselves. #}
{% macro materialized_cte() -%}
    {{ return(adapter.dispatch('materialized_cte')()) }}
{%- endmacro %}

{% macro default__materialized_cte() -%}
    as
{%- endmacro %}

{% macro postgres__materialized_cte() -%}
    as materialized
{%- endmacro %}
