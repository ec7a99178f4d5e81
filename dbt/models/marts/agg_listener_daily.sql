{{ config(materialized='incremental', unique_key='tier_day_key', incremental_strategy='delete+insert') }}

-- Dashboard: listener engagement by day and subscription tier. Distinct listeners
-- and sessions are sums of fct_plays' first-of flags, so a batch adds to them.
with batch as (
    select * from {{ ref('fct_plays') }}
    {% if is_incremental() %}
    where loaded_at > {{ high_water_mark('loaded_through') }}
    {% endif %}
),

delta as (
    select
        {{ dbt.concat(['subscription', "'|'", dbt.safe_cast('played_on', api.Column.translate_type('string'))]) }} as tier_day_key,
        played_on,
        subscription,
        count(*) as plays,
        sum(minutes_played) as minutes_played,
        sum(case when first_of_day then 1 else 0 end) as active_listeners,
        sum(case when first_of_session then 1 else 0 end) as sessions,
        sum(case when skipped then 1 else 0 end) as skipped_plays,
        max(loaded_at) as loaded_through
    from batch
    group by played_on, subscription
),

merged as (
    select
        delta.tier_day_key,
        delta.played_on,
        delta.subscription,
        {% if is_incremental() %}
        delta.plays + coalesce(earlier.plays, 0) as plays,
        delta.minutes_played + coalesce(earlier.minutes_played, 0) as minutes_played,
        delta.active_listeners + coalesce(earlier.active_listeners, 0) as active_listeners,
        delta.sessions + coalesce(earlier.sessions, 0) as sessions,
        delta.skipped_plays + coalesce(earlier.skipped_plays, 0) as skipped_plays,
        {% else %}
        delta.plays,
        delta.minutes_played,
        delta.active_listeners,
        delta.sessions,
        delta.skipped_plays,
        {% endif %}
        delta.loaded_through
    from delta
    {% if is_incremental() %}
    left join {{ this }} as earlier on earlier.tier_day_key = delta.tier_day_key
    {% endif %}
)

select
    tier_day_key,
    played_on,
    subscription,
    plays,
    minutes_played,
    active_listeners,
    sessions,
    skipped_plays,
    minutes_played / nullif(active_listeners, 0) as minutes_per_listener,
    skipped_plays * 1.0 / plays as skip_rate,
    loaded_through
from merged
