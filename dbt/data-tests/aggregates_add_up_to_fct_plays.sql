{{ config(tags=['full_scan']) }}
-- Each incremental aggregate holds exactly the plays of fct_plays: a batch counted
-- twice or missed shows here as a difference.
with totals as (
    select 'agg_region_hourly' as model, sum(plays) as plays from {{ ref('agg_region_hourly') }}
    union all
    select 'agg_track_daily', sum(plays) from {{ ref('agg_track_daily') }}
    union all
    select 'agg_listener_daily', sum(plays) from {{ ref('agg_listener_daily') }}
    union all
    select 'agg_device_daily', sum(plays) from {{ ref('agg_device_daily') }}
    union all
    select 'dim_tracks', sum(plays) from {{ ref('dim_tracks') }}
    union all
    select 'dim_listeners', sum(plays) from {{ ref('dim_listeners') }}
)

select totals.model, totals.plays, fct.plays as fct_plays
from totals
cross join (select count(*) as plays from {{ ref('fct_plays') }}) as fct
where coalesce(totals.plays, 0) <> fct.plays
