{{ config(
    materialized='incremental',
    incremental_strategy='append',
    indexes=[
        {'columns': ['loaded_at']},
        {'columns': ['user_id', 'played_on', 'track_id']},
        {'columns': ['session_id']},
    ],
) }}

-- Gold: one row per valid play, the grain every dashboard number comes from.
-- Incremental by loaded_at. Each play also says whether it is the first of its
-- listener-track-day, listener-day and session, so the daily aggregates count
-- distinct listeners and sessions by adding flags, one new batch at a time.
with plays as (
    select * from {{ ref('stg_bronze__plays') }}
    {% if is_incremental() %}
    where loaded_at > {{ high_water_mark('loaded_at') }}
    {% endif %}
),

ranked as (
    select
        plays.*,
        row_number() over (partition by user_id, played_on, track_id order by loaded_at, event_id) as nth_of_track_day,
        row_number() over (partition by user_id, played_on order by loaded_at, event_id) as nth_of_day,
        row_number() over (partition by session_id order by loaded_at, event_id) as nth_of_session
    from plays
)

{% if is_incremental() %}
-- What earlier batches already counted, for the keys this batch touches.
, seen_track_day as (
    select distinct earlier.user_id, earlier.played_on, earlier.track_id
    from {{ this }} as earlier
    inner join (select distinct user_id, played_on, track_id from plays) as touched
        on touched.user_id = earlier.user_id
        and touched.played_on = earlier.played_on
        and touched.track_id = earlier.track_id
),

seen_day as (
    select distinct earlier.user_id, earlier.played_on
    from {{ this }} as earlier
    inner join (select distinct user_id, played_on from plays) as touched
        on touched.user_id = earlier.user_id and touched.played_on = earlier.played_on
),

seen_session as (
    select distinct earlier.session_id
    from {{ this }} as earlier
    inner join (select distinct session_id from plays) as touched
        on touched.session_id = earlier.session_id
)
{% endif %}

select
    ranked.event_id,
    ranked.played_at,
    ranked.played_on,
    {{ dbt.date_trunc('hour', 'ranked.played_at') }} as played_hour,
    ranked.user_id,
    ranked.session_id,
    ranked.track_id,
    ranked.artist_id,
    {{ dbt.concat(['ranked.device_type', "'/'", 'ranked.platform']) }} as device_key,
    ranked.conn_country,
    ranked.region,
    ranked.subscription,
    ranked.ms_played,
    ranked.track_duration_ms,
    ranked.ms_played / 60000.0 as minutes_played,
    ranked.skipped,
    ranked.shuffle,
    ranked.offline,
    ranked.reason_start,
    ranked.reason_end,
    ranked.source_object,
    ranked.loaded_at,
    {% if is_incremental() %}
    (ranked.nth_of_track_day = 1 and seen_track_day.user_id is null) as first_of_track_day,
    (ranked.nth_of_day = 1 and seen_day.user_id is null) as first_of_day,
    (ranked.nth_of_session = 1 and seen_session.session_id is null) as first_of_session
    {% else %}
    ranked.nth_of_track_day = 1 as first_of_track_day,
    ranked.nth_of_day = 1 as first_of_day,
    ranked.nth_of_session = 1 as first_of_session
    {% endif %}
from ranked
{% if is_incremental() %}
left join seen_track_day
    on seen_track_day.user_id = ranked.user_id
    and seen_track_day.played_on = ranked.played_on
    and seen_track_day.track_id = ranked.track_id
left join seen_day
    on seen_day.user_id = ranked.user_id and seen_day.played_on = ranked.played_on
left join seen_session
    on seen_session.session_id = ranked.session_id
{% endif %}
