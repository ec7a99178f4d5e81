{{ config(
    materialized='incremental',
    incremental_strategy='insert_new_keys',
    unique_key='session_id',
    indexes=[
        {'columns': ['session_id'], 'unique': True},
        {'columns': ['loaded_through']},
    ],
) }}

-- The first play of each session: sessions per day and tier, batch by batch. As
-- int_plays__first_of_track_day.
select
    session_id,
    min(event_id) as event_id,
    max(loaded_at) as loaded_through
from {{ ref('stg_bronze__plays') }}
{% if is_incremental() %}
where loaded_at > {{ plays_in_gold_through() }}
{% endif %}
group by session_id
