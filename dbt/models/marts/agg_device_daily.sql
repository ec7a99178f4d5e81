-- Dashboard: device mix by day. Incremental, like agg_region_hourly.
{{ incremental_aggregate(
    key='device_day_key',
    key_of=['device_key', 'played_on'],
    grain=['played_on', 'device_key'],
    sums={
        'plays': 'count(*)',
        'minutes_played': 'sum(minutes_played)',
    },
) }}
