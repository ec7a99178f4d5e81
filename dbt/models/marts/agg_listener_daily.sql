-- Dashboard: listener engagement by day and subscription tier. Distinct listeners
-- and sessions are sums of fct_plays' first-of flags, so a batch adds to them.
{% call incremental_aggregate(
    key='tier_day_key',
    key_of=['subscription', 'played_on'],
    grain=['played_on', 'subscription'],
    sums={
        'plays': 'count(*)',
        'minutes_played': 'sum(minutes_played)',
        'active_listeners': 'sum(case when first_of_day then 1 else 0 end)',
        'sessions': 'sum(case when first_of_session then 1 else 0 end)',
        'skipped_plays': 'sum(case when skipped then 1 else 0 end)',
    },
) %}
select
    tier_day_key,
    played_on,
    subscription,
    plays,
    minutes_played,
    active_listeners,
    sessions,
    skipped_plays,
    minutes_played / nullif(active_listeners, 0) as minutes_per_listener,
    skipped_plays * 1.0 / plays as skip_rate,
    loaded_through
from merged
{% endcall %}
