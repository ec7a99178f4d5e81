-- Gold: every track that has been played.
select
    track_id,
    track_name,
    artist_id,
    artist_name,
    album_name,
    track_duration_ms,
    min(played_at) as first_played_at,
    count(*) as plays
from {{ ref('stg_bronze__plays') }}
group by track_id, track_name, artist_id, artist_name, album_name, track_duration_ms
