{{ config(materialized='incremental', unique_key='region_hour_key', incremental_strategy='delete+insert') }}

-- Dashboard: plays and listening minutes by region and hour. Incremental: each run
-- adds its batch of plays to the hours they touch.
with batch as (
    select * from {{ ref('fct_plays') }}
    {% if is_incremental() %}
    where loaded_at > {{ high_water_mark('loaded_through') }}
    {% endif %}
),

delta as (
    select
        {{ dbt.concat(['region', "'|'", dbt.safe_cast('played_hour', api.Column.translate_type('string'))]) }} as region_hour_key,
        region,
        played_hour,
        count(*) as plays,
        sum(minutes_played) as minutes_played,
        max(loaded_at) as loaded_through
    from batch
    group by region, played_hour
)

select
    delta.region_hour_key,
    delta.region,
    delta.played_hour,
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
left join {{ this }} as earlier on earlier.region_hour_key = delta.region_hour_key
{% endif %}
