{{ config(
    materialized='incremental',
    incremental_strategy='insert_new_keys',
    unique_key='session_id',
    indexes=[
        {'columns': ['session_id'], 'unique': True},
        {'columns': ['loaded_through']},
    ],
) }}

-- The first play of each session: sessions per day and tier, batch by batch.
{{ first_plays(['session_id']) }}
