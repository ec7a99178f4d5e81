{{ config(
    materialized='incremental',
    incremental_strategy='insert_new_keys',
    unique_key=['played_on', 'user_id', 'track_id'],
    indexes=[
        {'columns': ['played_on', 'user_id', 'track_id'], 'unique': True},
        {'columns': ['loaded_through']},
    ],
) }}

-- The first play of each listener-track-day: fct_plays flags it, so unique listeners
-- per track and day add up batch by batch. A batch offers its smallest event_id per
-- key (hashing, not sorting); a key already here keeps the play an earlier batch
-- chose. A batch is the plays past what fct_plays holds; loaded_through is the
-- newest loaded_at of the batch that added the key.
select
    played_on,
    user_id,
    track_id,
    min(event_id) as event_id,
    max(loaded_at) as loaded_through
from {{ ref('stg_bronze__plays') }}
{% if is_incremental() %}
where loaded_at > {{ plays_in_gold_through() }}
{% endif %}
group by played_on, user_id, track_id
