{{ config(
    materialized='incremental',
    incremental_strategy='insert_new_keys',
    unique_key=['played_on', 'user_id'],
    indexes=[
        {'columns': ['played_on', 'user_id'], 'unique': True},
        {'columns': ['loaded_through']},
    ],
) }}

-- The first play of each listener-day: daily active listeners, batch by batch.
{{ first_plays(['played_on', 'user_id']) }}
