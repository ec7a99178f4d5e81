{{ config(tags=['full_scan']) }}
-- A track cannot play for longer than it lasts.
select event_id, ms_played, track_duration_ms
from {{ ref('fct_plays') }}
where ms_played > track_duration_ms
