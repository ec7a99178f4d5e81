{{ config(
    materialized='incremental', unique_key='track_day_key', incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['track_day_key']},
        {'columns': ['played_on', 'track_id']},
        {'columns': ['track_id', 'played_on']}
    ]
) }}

-- Dashboard: track trends: daily plays, unique listeners, rank and skip rate. A
-- batch adds to the tracks it played; every track of a touched day is re-ranked.
-- Indexes (PostgreSQL): the merge's key, the dashboard's top tracks of a date range,
-- and a track's trend.
with batch as (
    select * from {{ ref('fct_plays') }}
    {% if is_incremental() %}
    where loaded_at > {{ high_water_mark('loaded_through') }}
    {% endif %}
),

delta as (
    select
        {{ dbt.concat(['track_id', "'|'", dbt.safe_cast('played_on', api.Column.translate_type('string'))]) }} as track_day_key,
        played_on,
        track_id,
        count(*) as plays,
        sum(case when first_of_track_day then 1 else 0 end) as unique_listeners,
        sum(case when skipped then 1 else 0 end) as skipped_plays,
        max(loaded_at) as loaded_through
    from batch
    group by played_on, track_id
),

merged as (
    select
        delta.track_day_key,
        delta.played_on,
        delta.track_id,
        {% if is_incremental() %}
        delta.plays + coalesce(earlier.plays, 0) as plays,
        delta.unique_listeners + coalesce(earlier.unique_listeners, 0) as unique_listeners,
        delta.skipped_plays + coalesce(earlier.skipped_plays, 0) as skipped_plays,
        {% else %}
        delta.plays,
        delta.unique_listeners,
        delta.skipped_plays,
        {% endif %}
        delta.loaded_through
    from delta
    {% if is_incremental() %}
    left join {{ this }} as earlier on earlier.track_day_key = delta.track_day_key

    union all

    -- The day's other tracks, unchanged but for their rank.
    select
        earlier.track_day_key,
        earlier.played_on,
        earlier.track_id,
        earlier.plays,
        earlier.unique_listeners,
        earlier.skipped_plays,
        earlier.loaded_through
    from {{ this }} as earlier
    inner join (select distinct played_on from delta) as days on days.played_on = earlier.played_on
    left join delta on delta.track_day_key = earlier.track_day_key
    where delta.track_day_key is null
    {% endif %}
)

select
    track_day_key,
    played_on,
    track_id,
    plays,
    unique_listeners,
    skipped_plays,
    skipped_plays * 1.0 / plays as skip_rate,
    rank() over (partition by played_on order by plays desc) as daily_rank,
    loaded_through
from merged
