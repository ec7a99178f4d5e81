{{ config(materialized='incremental', unique_key='device_key', incremental_strategy='delete+insert') }}

-- Gold: device types and their platforms.
select
    {{ dbt.concat(['device_type', "'/'", 'platform']) }} as device_key,
    device_type,
    platform,
    max(loaded_at) as loaded_through
from {{ ref('int_plays__accepted') }}
{% if is_incremental() %}
where loaded_at > {{ high_water_mark('loaded_through') }}
{% endif %}
group by device_type, platform
