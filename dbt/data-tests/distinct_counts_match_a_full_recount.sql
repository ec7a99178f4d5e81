{{ config(tags=['full_scan']) }}
-- The first-of flags that make distinct counts additive agree with counting afresh
-- over all of fct_plays: daily active listeners per tier, and sessions in all (a
-- session that crosses midnight counts on the day it started).
with recount as (
    select played_on, subscription, count(distinct user_id) as active_listeners
    from {{ ref('fct_plays') }}
    group by played_on, subscription
),

listeners as (
    select recount.played_on, recount.subscription, recount.active_listeners, agg.active_listeners as counted
    from recount
    left join {{ ref('agg_listener_daily') }} as agg
        on agg.played_on = recount.played_on and agg.subscription = recount.subscription
    where agg.active_listeners is null or agg.active_listeners <> recount.active_listeners
),

sessions as (
    select
        cast(null as date) as played_on,
        'all tiers' as subscription,
        (select count(distinct session_id) from {{ ref('fct_plays') }}) as active_listeners,
        (select sum(sessions) from {{ ref('agg_listener_daily') }}) as counted
)

select * from listeners
union all
select * from sessions where active_listeners <> counted
