{{ config(materialized='view') }}

-- Silver's quarantine: bronze rows kept out of gold, each with the rule it broke. A
-- second copy of an event_id is quarantined as a duplicate.
select
    event_id,
    ts,
    user_id,
    track_id,
    ms_played,
    track_duration_ms,
    region,
    source_object,
    load_id,
    loaded_at,
    rejection_reason
from {{ ref('int_plays__triaged') }}
where rejection_reason is not null
