{{ config(materialized='view') }}

-- Staging: every bronze row as landed, with the first rule it breaks (null when it
-- breaks none). Duplicates are not judged here: int_plays__triaged does that.
select
    source.*,
    case
        when event_id is null then 'event_id is missing'
        when not {{ is_uuid('event_id') }} then 'event_id is not a UUID'
        when ts is null then 'ts is missing'
        when ts > {{ dbt.dateadd('minute', 5, 'loaded_at') }} then 'ts is in the future'
        when user_id is null or user_id = '' then 'user_id is missing'
        when track_id is null or track_id = '' then 'track_id is missing'
        when track_duration_ms is null or track_duration_ms <= 0 then 'track_duration_ms is not positive'
        when ms_played is null or ms_played < 0 then 'ms_played is negative'
        when ms_played > track_duration_ms then 'ms_played exceeds track_duration_ms'
        when region not in ('North America', 'Latin America', 'Europe', 'Asia Pacific', 'Middle East & Africa')
            then 'unknown region'
    end as rejection_reason
from {{ source('bronze', 'plays') }} as source
