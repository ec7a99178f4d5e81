-- Dashboard: plays and listening minutes by region and hour. Incremental: each run
-- adds its batch of plays to the hours they touch (see incremental_aggregate).
{{ incremental_aggregate(
    key='region_hour_key',
    key_of=['region', 'played_hour'],
    grain=['region', 'played_hour'],
    sums={
        'plays': 'count(*)',
        'minutes_played': 'sum(minutes_played)',
    },
) }}
