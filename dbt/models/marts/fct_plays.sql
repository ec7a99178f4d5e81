{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert') }}

-- Gold: one row per valid play. Incremental: each run adds the plays of objects it
-- has not seen.
with plays as (
    select * from {{ ref('stg_bronze__plays') }}
    {% if is_incremental() %}
    where source_object not in (select distinct source_object from {{ this }})
    {% endif %}
)

select
    event_id,
    played_at,
    played_on,
    {{ dbt.date_trunc('hour', 'played_at') }} as played_hour,
    user_id,
    session_id,
    track_id,
    artist_id,
    {{ dbt.concat(['device_type', "'/'", 'platform']) }} as device_key,
    conn_country,
    region,
    subscription,
    ms_played,
    track_duration_ms,
    ms_played / 60000.0 as minutes_played,
    skipped,
    shuffle,
    offline,
    reason_start,
    reason_end,
    source_object,
    loaded_at
from plays
