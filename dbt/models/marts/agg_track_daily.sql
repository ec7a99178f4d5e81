-- Dashboard: track trends: daily plays, unique listeners, rank and skip rate.
with daily as (
    select
        played_on,
        track_id,
        count(*) as plays,
        count(distinct user_id) as unique_listeners,
        avg(case when skipped then 1.0 else 0.0 end) as skip_rate
    from {{ ref('fct_plays') }}
    group by played_on, track_id
)

select
    {{ dbt.concat(['track_id', "'|'", dbt.safe_cast('played_on', api.Column.translate_type('string'))]) }} as track_day_key,
    daily.*,
    rank() over (partition by played_on order by plays desc) as daily_rank
from daily
