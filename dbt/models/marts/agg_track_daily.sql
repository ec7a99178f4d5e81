{{ config(
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
{% call incremental_aggregate(
    key='track_day_key',
    key_of=['track_id', 'played_on'],
    grain=['played_on', 'track_id'],
    sums={
        'plays': 'count(*)',
        'unique_listeners': 'sum(case when first_of_track_day then 1 else 0 end)',
        'skipped_plays': 'sum(case when skipped then 1 else 0 end)',
    },
    rewrite_partition='played_on',
) %}
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
{% endcall %}
