-- Dashboard: plays and listening minutes by region and hour.
select
    {{ dbt.concat(['region', "'|'", dbt.safe_cast('played_hour', api.Column.translate_type('string'))]) }} as region_hour_key,
    region,
    played_hour,
    count(*) as plays,
    sum(minutes_played) as minutes_played,
    count(distinct user_id) as listeners
from {{ ref('fct_plays') }}
group by region, played_hour
