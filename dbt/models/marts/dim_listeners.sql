-- Gold: every listener that has played something.
select
    user_id,
    conn_country,
    region,
    city,
    subscription,
    min(played_at) as first_played_at,
    max(played_at) as last_played_at,
    count(*) as plays
from {{ ref('stg_bronze__plays') }}
group by user_id, conn_country, region, city, subscription
