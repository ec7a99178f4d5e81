{{ config(
    materialized='incremental',
    incremental_strategy='append',
    indexes=[{'columns': ['loaded_at']}],
) }}

-- Gold: one row per valid play, the grain every dashboard number comes from.
-- Incremental by loaded_at. Each play also says whether it is the first of its
-- listener-track-day, listener-day and session, so the daily aggregates count
-- distinct listeners and sessions by adding flags, one batch at a time. Which play
-- is the first of a key the int_plays__first_of_* tables decide (and keep): the
-- keys they added since this table's last batch are this batch's firsts.
{% set mark = high_water_mark('loaded_at') if is_incremental() else none %}
with plays as (
    select * from {{ ref('int_plays__accepted') }}
    {% if is_incremental() %}
    where loaded_at > {{ mark }}
    {% endif %}
),

{% for key in ['track_day', 'day', 'session'] %}
new_firsts_of_{{ key }} as (
    select event_id from {{ ref('int_plays__first_of_' ~ key) }}
    {% if is_incremental() %}
    where loaded_through > {{ mark }}
    {% endif %}
){{ ',' if not loop.last }}
{% endfor %}

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
    new_firsts_of_track_day.event_id is not null as first_of_track_day,
    new_firsts_of_day.event_id is not null as first_of_day,
    new_firsts_of_session.event_id is not null as first_of_session
from plays
left join new_firsts_of_track_day on new_firsts_of_track_day.event_id = plays.event_id
left join new_firsts_of_day on new_firsts_of_day.event_id = plays.event_id
left join new_firsts_of_session on new_firsts_of_session.event_id = plays.event_id
