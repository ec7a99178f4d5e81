{{ config(materialized='view') }}

-- Silver's valid plays, typed, exactly one row per event_id (the first copy loaded):
-- what the int_plays__first_of_* models, fct_plays and the dimensions read.
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
from {{ ref('int_plays__triaged') }}
where rejection_reason is null
