{# An incremental model's batch goes into its table straight from a temporary view.
   dbt's incremental materialization first writes the batch into a temporary relation
   and then runs the strategy's statement against it; on PostgreSQL that relation is a
   table, so an append wrote every row twice. With a view, the strategy's single
   INSERT runs the model's query itself. Only for strategies that read the temporary
   relation once: delete+insert reads it twice, around a delete that would change
   what a view over the target table returns. #}
{% macro postgres__create_table_as(temporary, relation, sql) -%}
    {%- if temporary and config.get('incremental_strategy') in ('append', 'insert_new_keys') -%}
        create temporary view {{ relation.include(database=False, schema=False) }} as (
            {{ sql }}
        )
    {%- else -%}
        {{ dbt.postgres__create_table_as(temporary, relation, sql) }}
    {%- endif -%}
{%- endmacro %}
