{# The agg_* marts' common frame: an incremental table (delete+insert on `key`) that
   sums fct_plays' batch by `grain` and adds the sums to the rows it already holds.

   - key: the key column's name; its value is `key_of[0]`|`key_of[1]` (the second
     cast to text), e.g. 'Europe|2026-05-01 17:00:00+00'.
   - grain: the grouping columns, in the table's column order.
   - sums: {column: aggregate over the batch}, every one additive (a count, a sum).
   - rewrite_partition: a grain column; when given, the incremental batch also brings
     back the rows it did not touch of every value of that column it touched, so that
     a window over it (agg_track_daily's daily rank) is recomputed whole.

   The batch is fct_plays past the newest loaded_through the table holds. Without a
   call block the merged rows are the model; with one, they are the CTE `merged` and
   the block is the model's final select over it. #}
{% macro incremental_aggregate(key, key_of, grain, sums, rewrite_partition=none) -%}
{{ config(materialized='incremental', unique_key=key, incremental_strategy='delete+insert') }}
{%- set merge -%}
    select
        delta.{{ key }},
        {% for column in grain -%}
        delta.{{ column }},
        {% endfor -%}
        {% for column in sums -%}
        {% if is_incremental() -%}
        delta.{{ column }} + coalesce(earlier.{{ column }}, 0) as {{ column }},
        {% else -%}
        delta.{{ column }},
        {% endif -%}
        {% endfor -%}
        delta.loaded_through
    from delta
    {% if is_incremental() %}
    left join {{ this }} as earlier on earlier.{{ key }} = delta.{{ key }}
    {% if rewrite_partition is not none %}

    union all

    -- The touched {{ rewrite_partition }} values' other rows, unchanged.
    select
        earlier.{{ key }},
        {% for column in grain -%}
        earlier.{{ column }},
        {% endfor -%}
        {% for column in sums -%}
        earlier.{{ column }},
        {% endfor -%}
        earlier.loaded_through
    from {{ this }} as earlier
    inner join (select distinct {{ rewrite_partition }} from delta) as touched
        on touched.{{ rewrite_partition }} = earlier.{{ rewrite_partition }}
    left join delta on delta.{{ key }} = earlier.{{ key }}
    where delta.{{ key }} is null
    {% endif %}
    {% endif %}
{%- endset -%}

with batch as (
    select * from {{ ref('fct_plays') }}
    {% if is_incremental() %}
    where loaded_at > {{ high_water_mark('loaded_through') }}
    {% endif %}
),

delta as (
    select
        {{ dbt.concat([key_of[0], "'|'", dbt.safe_cast(key_of[1], api.Column.translate_type('string'))]) }} as {{ key }},
        {% for column in grain -%}
        {{ column }},
        {% endfor -%}
        {% for column, aggregate in sums.items() -%}
        {{ aggregate }} as {{ column }},
        {% endfor -%}
        max(loaded_at) as loaded_through
    from batch
    group by {{ grain | join(', ') }}
)

{% if caller is defined -%}
, merged as (
{{ merge }}
)

{{ caller() }}
{%- else -%}
{{ merge }}
{%- endif %}
{%- endmacro %}
