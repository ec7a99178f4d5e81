{{ config(
    materialized='incremental',
    incremental_strategy='append',
    indexes=[
        {'columns': ['loaded_at']},
        {'columns': ['played_on', 'user_id']},
        {'columns': ['session_id']},
    ],
) }}

-- Gold: one row per valid play, the grain every dashboard number comes from.
-- Incremental by loaded_at. Each play also says whether it is the first of its
-- listener-track-day, listener-day and session, so the daily aggregates count
-- distinct listeners and sessions by adding flags, one batch at a time. Which play
-- of a key is "first" does not matter for the counts, so the batch picks the
-- smallest event_id of each key: hashing, not sorting.
with plays as (
    select * from {{ ref('stg_bronze__plays') }}
    {% if is_incremental() %}
    where loaded_at > {{ high_water_mark('loaded_at') }}
    {% endif %}
),

-- The first play of each key in this batch; a key earlier batches already counted
-- is not new. Probes go per key, not per play: a batch has far fewer keys.
track_days as (
    select user_id, played_on, track_id, min(event_id) as event_id
    from plays
    group by user_id, played_on, track_id
),

new_track_days as (
    select event_id
    from track_days
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as earlier
        where earlier.played_on = track_days.played_on
            and earlier.user_id = track_days.user_id
            and earlier.track_id = track_days.track_id
    )
    {% endif %}
),

listener_days as (
    select user_id, played_on, min(event_id) as event_id
    from plays
    group by user_id, played_on
),

new_listener_days as (
    select event_id
    from listener_days
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as earlier
        where earlier.played_on = listener_days.played_on
            and earlier.user_id = listener_days.user_id
    )
    {% endif %}
),

sessions as (
    select session_id, min(event_id) as event_id
    from plays
    group by session_id
),

new_sessions as (
    select event_id
    from sessions
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as earlier where earlier.session_id = sessions.session_id
    )
    {% endif %}
)

select
    plays.event_id,
    plays.played_at,
    plays.played_on,
    {{ dbt.date_trunc('hour', 'plays.played_at') }} as played_hour,
    plays.user_id,
    plays.session_id,
    plays.track_id,
    plays.artist_id,
    {{ dbt.concat(['plays.device_type', "'/'", 'plays.platform']) }} as device_key,
    plays.conn_country,
    plays.region,
    plays.subscription,
    plays.ms_played,
    plays.track_duration_ms,
    plays.ms_played / 60000.0 as minutes_played,
    plays.skipped,
    plays.shuffle,
    plays.offline,
    plays.reason_start,
    plays.reason_end,
    plays.source_object,
    plays.loaded_at,
    new_track_days.event_id is not null as first_of_track_day,
    new_listener_days.event_id is not null as first_of_day,
    new_sessions.event_id is not null as first_of_session
from plays
left join new_track_days on new_track_days.event_id = plays.event_id
left join new_listener_days on new_listener_days.event_id = plays.event_id
left join new_sessions on new_sessions.event_id = plays.event_id
