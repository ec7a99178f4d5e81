-- Silver: bronze rows kept out of gold, each with its reason. A second copy of an
-- event_id is quarantined as a duplicate.
with checked as (
    select * from {{ ref('int_bronze__plays_checked') }}
)

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
    coalesce(rejection_reason, 'duplicate event_id') as rejection_reason
from checked
where rejection_reason is not null or copy_number > 1
