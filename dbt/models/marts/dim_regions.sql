-- Gold: countries and the region each belongs to.
select
    conn_country,
    region,
    count(distinct user_id) as listeners
from {{ ref('stg_bronze__plays') }}
group by conn_country, region
