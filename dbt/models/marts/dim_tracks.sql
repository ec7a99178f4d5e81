{{ config(materialized='incremental', unique_key='track_id', incremental_strategy='delete+insert') }}

-- Gold: every track that has been played. Incremental: a batch adds its tracks and
-- its plays of the ones already here.
with batch as (
    select * from {{ ref('int_plays__accepted') }}
    {% if is_incremental() %}
    where loaded_at > {{ high_water_mark('loaded_through') }}
    {% endif %}
),

delta as (
    select
        track_id,
        max(track_name) as track_name,
        max(artist_id) as artist_id,
        max(artist_name) as artist_name,
        max(album_name) as album_name,
        max(track_duration_ms) as track_duration_ms,
        min(played_at) as first_played_at,
        count(*) as plays,
        max(loaded_at) as loaded_through
    from batch
    group by track_id
)

select
    delta.track_id,
    delta.track_name,
    delta.artist_id,
    delta.artist_name,
    delta.album_name,
    delta.track_duration_ms,
    {% if is_incremental() %}
    least(coalesce(earlier.first_played_at, delta.first_played_at), delta.first_played_at) as first_played_at,
    delta.plays + coalesce(earlier.plays, 0) as plays,
    {% else %}
    delta.first_played_at,
    delta.plays,
    {% endif %}
    delta.loaded_through
from delta
{% if is_incremental() %}
left join {{ this }} as earlier on earlier.track_id = delta.track_id
{% endif %}
