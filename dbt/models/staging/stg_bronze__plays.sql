{{ config(materialized='view') }}

-- Silver: typed, valid plays, exactly one row per event_id (the first copy loaded).
select
    event_id,
    ts as played_at,
    cast(ts as date) as played_on,
    user_id,
    session_id,
    track_id,
    track_name,
    artist_id,
    artist_name,
    album_name,
    ms_played,
    track_duration_ms,
    reason_start,
    reason_end,
    skipped,
    shuffle,
    offline,
    platform,
    device_type,
    conn_country,
    region,
    city,
    subscription,
    source_object,
    loaded_at
from {{ ref('int_bronze__plays_triaged') }}
where rejection_reason is null
