-- Dashboard: device mix by day.
select
    {{ dbt.concat(['device_key', "'|'", dbt.safe_cast('played_on', api.Column.translate_type('string'))]) }} as device_day_key,
    played_on,
    device_key,
    count(*) as plays,
    count(distinct user_id) as listeners,
    sum(minutes_played) as minutes_played
from {{ ref('fct_plays') }}
group by played_on, device_key
