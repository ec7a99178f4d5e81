{{ config(materialized='incremental', unique_key='device_day_key', incremental_strategy='delete+insert') }}

-- Dashboard: device mix by day. Incremental, like agg_region_hourly.
with batch as (
    select * from {{ ref('fct_plays') }}
    {% if is_incremental() %}
    where loaded_at > {{ high_water_mark('loaded_through') }}
    {% endif %}
),

delta as (
    select
        {{ dbt.concat(['device_key', "'|'", dbt.safe_cast('played_on', api.Column.translate_type('string'))]) }} as device_day_key,
        played_on,
        device_key,
        count(*) as plays,
        sum(minutes_played) as minutes_played,
        max(loaded_at) as loaded_through
    from batch
    group by played_on, device_key
)

select
    delta.device_day_key,
    delta.played_on,
    delta.device_key,
    {% if is_incremental() %}
    delta.plays + coalesce(earlier.plays, 0) as plays,
    delta.minutes_played + coalesce(earlier.minutes_played, 0) as minutes_played,
    {% else %}
    delta.plays,
    delta.minutes_played,
    {% endif %}
    delta.loaded_through
from delta
{% if is_incremental() %}
left join {{ this }} as earlier on earlier.device_day_key = delta.device_day_key
{% endif %}
