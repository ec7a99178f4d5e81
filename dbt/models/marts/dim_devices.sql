-- Gold: device types and their platforms.
select
    {{ dbt.concat(['device_type', "'/'", 'platform']) }} as device_key,
    device_type,
    platform,
    count(distinct user_id) as listeners
from {{ ref('stg_bronze__plays') }}
group by device_type, platform
