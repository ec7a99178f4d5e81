-- Dashboard: listener engagement by day and subscription tier.
select
    {{ dbt.concat(['subscription', "'|'", dbt.safe_cast('played_on', api.Column.translate_type('string'))]) }} as tier_day_key,
    played_on,
    subscription,
    count(distinct user_id) as active_listeners,
    sum(minutes_played) / count(distinct user_id) as minutes_per_listener,
    count(distinct session_id) as sessions,
    avg(case when skipped then 1.0 else 0.0 end) as skip_rate
from {{ ref('fct_plays') }}
group by played_on, subscription
