-- Claims the ready task instance of the highest priority, then the oldest, for worker
-- $1 and opens its attempt.
-- SKIP LOCKED lets any number of workers claim side by side without waiting.
-- A waiting task's poke continues its try: same try number, same attempt (and log),
-- one more poke.
WITH next AS (
    SELECT id FROM setlist.task_instances
    WHERE state IN ('queued', 'up_for_retry', 'waiting')
      AND (state = 'queued' OR retry_at <= clock_timestamp())
    ORDER BY priority DESC, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE setlist.task_instances t
    SET state = 'running',
        try_number = t.try_number + CASE WHEN t.state = 'waiting' THEN 0 ELSE 1 END,
        worker_id = $1,
        started_at = CASE WHEN t.state = 'waiting' THEN t.started_at ELSE clock_timestamp() END,
        ended_at = NULL, retry_at = NULL
    FROM next
    WHERE t.id = next.id
    RETURNING t.*
), attempt AS (
    INSERT INTO setlist.attempts (ti_id, try_number, worker_id, state, started_at)
    SELECT id, try_number, $1, 'running', started_at FROM claimed
    ON CONFLICT (ti_id, try_number) DO UPDATE
        SET state = 'running', worker_id = EXCLUDED.worker_id, ended_at = NULL,
            pokes = setlist.attempts.pokes + 1
    RETURNING id, ti_id, pokes
)
SELECT c.id AS ti_id, a.id AS attempt_id, a.pokes, c.run_id, c.task_id, c.kind, c.params, c.upstream,
       c.try_number, c.max_tries, c.timeout_ms, c.cancel_requested, c.branch, c.map_over,
       c.map_index, c.map_element,
       c.started_at AS "started_at!",
       r.dag_id, r.logical_date, r.data_interval_start, r.data_interval_end, r.conf
FROM claimed c
JOIN attempt a ON a.ti_id = c.id
JOIN setlist.dag_runs r ON r.id = c.run_id
