{{ config(
    materialized='incremental',
    incremental_strategy='insert_new_keys',
    unique_key=['played_on', 'user_id'],
    indexes=[
        {'columns': ['played_on', 'user_id'], 'unique': True},
        {'columns': ['loaded_through']},
    ],
) }}

-- The first play of each listener-day: daily active listeners, batch by batch. As
-- int_plays__first_of_track_day.
select
    played_on,
    user_id,
    min(event_id) as event_id,
    max(loaded_at) as loaded_through
from {{ ref('stg_bronze__plays') }}
{% if is_incremental() %}
where loaded_at > {{ plays_in_gold_through() }}
{% endif %}
group by played_on, user_id
