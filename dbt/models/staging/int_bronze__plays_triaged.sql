{{ config(
    materialized='incremental',
    incremental_strategy='append',
    indexes=[{'columns': ['event_id']}, {'columns': ['loaded_at']}],
    post_hook=[
        "{% if target.type == 'postgres' %}create index if not exists {{ this.identifier }}_quarantined on {{ this }} (loaded_at) where rejection_reason is not null{% endif %}",
    ],
) }}

-- Silver's storage: every bronze row exactly once, with the first rule it breaks,
-- 'duplicate event_id' for any copy of an event after the first valid one, and null
-- when it is valid. Incremental by loaded_at: the loader commits one object at a
-- time, in loaded_at order, so the rows past the high-water mark are the new ones.
with batch as (
    select * from {{ ref('int_bronze__plays_checked') }}
    {% if is_incremental() %}
    where loaded_at > {{ high_water_mark('loaded_at') }}
    {% endif %}
),

ranked as (
    select
        batch.*,
        row_number() over (
            partition by event_id order by loaded_at, source_object, kafka_offset
        ) as copy_number
    from batch
)

{% if is_incremental() %}
, seen as (
    -- Events of this batch that silver already holds a valid copy of.
    select distinct earlier.event_id
    from {{ this }} as earlier
    inner join batch on batch.event_id = earlier.event_id
    where earlier.rejection_reason is null
)
{% endif %}

select
    ranked.event_id,
    ranked.ts,
    ranked.user_id,
    ranked.session_id,
    ranked.track_id,
    ranked.track_name,
    ranked.artist_id,
    ranked.artist_name,
    ranked.album_name,
    ranked.ms_played,
    ranked.track_duration_ms,
    ranked.reason_start,
    ranked.reason_end,
    ranked.skipped,
    ranked.shuffle,
    ranked.offline,
    ranked.platform,
    ranked.device_type,
    ranked.conn_country,
    ranked.region,
    ranked.city,
    ranked.subscription,
    ranked.kafka_partition,
    ranked.kafka_offset,
    ranked.source_object,
    ranked.load_id,
    ranked.loaded_at,
    case
        when ranked.rejection_reason is not null then ranked.rejection_reason
        when ranked.copy_number > 1 then 'duplicate event_id'
        {% if is_incremental() %}
        when seen.event_id is not null then 'duplicate event_id'
        {% endif %}
    end as rejection_reason
from ranked
{% if is_incremental() %}
left join seen on seen.event_id = ranked.event_id
{% endif %}
