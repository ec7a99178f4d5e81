{{ config(materialized='incremental', unique_key='conn_country', incremental_strategy='delete+insert') }}

-- Gold: countries and the region each belongs to.
select
    conn_country,
    max(region) as region,
    max(loaded_at) as loaded_through
from {{ ref('int_plays__accepted') }}
{% if is_incremental() %}
where loaded_at > {{ high_water_mark('loaded_through') }}
{% endif %}
group by conn_country
