{{ config(materialized='incremental', unique_key='user_id', incremental_strategy='delete+insert') }}

-- Gold: every listener that has played something. Incremental, like dim_tracks.
with batch as (
    select * from {{ ref('int_plays__accepted') }}
    {% if is_incremental() %}
    where loaded_at > {{ high_water_mark('loaded_through') }}
    {% endif %}
),

delta as (
    select
        user_id,
        max(conn_country) as conn_country,
        max(region) as region,
        max(city) as city,
        max(subscription) as subscription,
        min(played_at) as first_played_at,
        max(played_at) as last_played_at,
        count(*) as plays,
        max(loaded_at) as loaded_through
    from batch
    group by user_id
)

select
    delta.user_id,
    delta.conn_country,
    delta.region,
    delta.city,
    delta.subscription,
    {% if is_incremental() %}
    least(coalesce(earlier.first_played_at, delta.first_played_at), delta.first_played_at) as first_played_at,
    greatest(coalesce(earlier.last_played_at, delta.last_played_at), delta.last_played_at) as last_played_at,
    delta.plays + coalesce(earlier.plays, 0) as plays,
    {% else %}
    delta.first_played_at,
    delta.last_played_at,
    delta.plays,
    {% endif %}
    delta.loaded_through
from delta
{% if is_incremental() %}
left join {{ this }} as earlier on earlier.user_id = delta.user_id
{% endif %}
