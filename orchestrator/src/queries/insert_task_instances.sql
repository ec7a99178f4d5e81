-- All task instances of a new run in one statement; every array has one entry per task.
INSERT INTO setlist.task_instances
    (run_id, task_id, kind, params, upstream, is_leaf, trigger_rule, retries, retry_delay_ms,
     retry_backoff, max_retry_delay_ms, timeout_ms, branch, map_over, max_active_mapped, alerts,
     priority, pool, pool_slots, queue, state, max_tries)
SELECT $1, t.task_id, t.kind, t.params,
       ARRAY(SELECT jsonb_array_elements_text(t.upstream)),
       t.is_leaf, t.trigger_rule, t.retries, t.retry_delay_ms, t.retry_backoff,
       t.max_retry_delay_ms, t.timeout_ms, t.branch, t.map_over, t.max_active_mapped, t.alerts,
       t.priority, t.pool, t.pool_slots, t.queue, 'scheduled',
       t.retries + 1
FROM UNNEST($2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::bool[], $7::text[],
            $8::int[], $9::bigint[], $10::bool[], $11::bigint[], $12::bigint[], $13::bool[],
            $14::jsonb[], $15::int[], $16::jsonb[], $17::int[], $18::text[],
            $19::int[], $20::text[])
     AS t (task_id, kind, params, upstream, is_leaf, trigger_rule, retries, retry_delay_ms,
           retry_backoff, max_retry_delay_ms, timeout_ms, branch, map_over, max_active_mapped, alerts, priority, pool,
           pool_slots, queue)
