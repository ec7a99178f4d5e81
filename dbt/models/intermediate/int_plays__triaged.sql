{{ config(
    materialized='incremental',
    incremental_strategy='append',
    indexes=[{'columns': ['loaded_at']}, {'columns': ['ts']}],
    post_hook=[
        "{% if target.type == 'postgres' %}create index if not exists {{ this.identifier }}_quarantined on {{ this }} (loaded_at) where rejection_reason is not null{% endif %}",
    ],
) }}

-- Silver's storage: every bronze row exactly once, with the first rule it breaks,
-- 'duplicate event_id' for any valid copy of an event after the first, and null
-- when it is valid. Incremental by loaded_at: the loader commits one object at a
-- time, in loaded_at order, so the rows past the high-water mark are the new ones.
{% set mark = high_water_mark('loaded_at') if is_incremental() else none %}
with batch as (
    select * from {{ ref('stg_bronze__plays') }}
    {% if is_incremental() %}
    where loaded_at > {{ mark }}
    {% endif %}
),

-- The batch's valid rows, narrow: the duplicate checks below read them several times,
-- and a narrow row set stays in memory where the whole rows would spill to disk.
valid {{ materialized_cte() }} (
    select event_id, ts, loaded_at, source_object, kafka_offset
    from {{ ref('stg_bronze__plays') }}
    where rejection_reason is null
    {% if is_incremental() %}
        and loaded_at > {{ mark }}
    {% endif %}
),

-- Events that arrive more than once in this batch (rare): every valid copy after
-- the first loaded. Only these few rows are sorted.
repeated as (
    select event_id
    from valid
    group by event_id
    having count(*) > 1
),

later_copies as (
    select source_object, kafka_offset
    from (
        select
            valid.source_object,
            valid.kafka_offset,
            row_number() over (
                partition by valid.event_id order by valid.loaded_at, valid.source_object, valid.kafka_offset
            ) as copy_number
        from valid
        inner join repeated on repeated.event_id = valid.event_id
    ) as copies
    where copy_number > 1
)

{% if is_incremental() %}
-- Events silver already holds a valid copy of. A copy carries its event's ts, so
-- only earlier rows within this batch's span of ts can match (the ts index).
, seen as (
    select distinct earlier.event_id
    from {{ this }} as earlier
    inner join valid on valid.event_id = earlier.event_id
    where earlier.rejection_reason is null
        and earlier.ts >= (select min(ts) from valid)
        and earlier.ts <= (select max(ts) from valid)
)
{% endif %}

select
    batch.event_id,
    batch.ts,
    batch.user_id,
    batch.session_id,
    batch.track_id,
    batch.track_name,
    batch.artist_id,
    batch.artist_name,
    batch.album_name,
    batch.ms_played,
    batch.track_duration_ms,
    batch.reason_start,
    batch.reason_end,
    batch.skipped,
    batch.shuffle,
    batch.offline,
    batch.platform,
    batch.device_type,
    batch.conn_country,
    batch.region,
    batch.city,
    batch.subscription,
    batch.kafka_partition,
    batch.kafka_offset,
    batch.source_object,
    batch.load_id,
    batch.loaded_at,
    case
        when batch.rejection_reason is not null then batch.rejection_reason
        when later_copies.source_object is not null then 'duplicate event_id'
        {% if is_incremental() %}
        when seen.event_id is not null then 'duplicate event_id'
        {% endif %}
    end as rejection_reason
from batch
left join later_copies
    on later_copies.source_object = batch.source_object
    and later_copies.kafka_offset = batch.kafka_offset
{% if is_incremental() %}
left join seen on seen.event_id = batch.event_id
{% endif %}
