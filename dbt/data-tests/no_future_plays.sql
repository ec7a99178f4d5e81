{{ config(tags=['full_scan']) }}
-- A play cannot end after it was loaded (five minutes of clock skew allowed).
select event_id, played_at, loaded_at
from {{ ref('fct_plays') }}
where played_at > {{ dbt.dateadd('minute', 5, 'loaded_at') }}
