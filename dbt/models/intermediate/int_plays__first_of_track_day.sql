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
-- per track and day add up batch by batch.
{{ first_plays(['played_on', 'user_id', 'track_id']) }}
