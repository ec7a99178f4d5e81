{# Incremental strategy `insert_new_keys`: adds the batch's rows whose unique_key the
   table does not hold yet and leaves the rows it holds as they are, so a key's row is
   the one of the first batch that had it. On PostgreSQL an INSERT ... ON CONFLICT DO
   NOTHING against the model's unique index on the key: one index probe per batch row
   however large the table grows, where an anti-join would read the whole table.
   Elsewhere a MERGE that inserts when not matched. #}
{% macro get_incremental_insert_new_keys_sql(arg_dict) -%}
    {{ return(adapter.dispatch('insert_new_keys_sql')(arg_dict)) }}
{%- endmacro %}

{% macro postgres__insert_new_keys_sql(arg_dict) -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set keys = arg_dict['unique_key'] if arg_dict['unique_key'] is not string else [arg_dict['unique_key']] -%}
    insert into {{ arg_dict['target_relation'] }} ({{ columns }})
    select {{ columns }} from {{ arg_dict['temp_relation'] }}
    order by {{ keys | join(', ') }}
    on conflict do nothing
{%- endmacro %}

{% macro default__insert_new_keys_sql(arg_dict) -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set keys = arg_dict['unique_key'] if arg_dict['unique_key'] is not string else [arg_dict['unique_key']] -%}
    merge into {{ arg_dict['target_relation'] }} as existing
    using {{ arg_dict['temp_relation'] }} as batch
    on {% for key in keys %}existing.{{ key }} = batch.{{ key }}{% if not loop.last %} and {% endif %}{% endfor %}
    when not matched then insert ({{ columns }})
    values ({% for column in arg_dict['dest_columns'] %}batch.{{ adapter.quote(column.name) }}{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}
