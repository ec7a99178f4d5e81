-- Claims the ready task instance of the highest priority, then the oldest, that worker
-- $1 may run: of a queue it serves ($2) and a kind it has ($3), in no pool or in a pool
-- with room for its slots. The pool's slots are taken in the same statement, guarded
-- so that two workers racing for a pool's last slot cannot both take it (the second
-- finds the slot gone when the first commits, and claims nothing).
-- SKIP LOCKED lets any number of workers claim side by side without waiting.
-- A waiting task's poke continues its try: same try number, same attempt (and log),
-- one more poke.
WITH next AS (
    SELECT t.id, t.pool, t.pool_slots FROM setlist.task_instances t
    WHERE t.state IN ('queued', 'up_for_retry', 'waiting')
      AND (t.state = 'queued' OR t.retry_at <= clock_timestamp())
      AND t.queue = ANY ($2) AND t.kind = ANY ($3)
      AND (t.pool IS NULL OR EXISTS (
          SELECT 1 FROM setlist.pools p WHERE p.name = t.pool AND p.used + t.pool_slots <= p.slots))
    ORDER BY t.priority DESC, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
), taken AS (
    UPDATE setlist.pools p SET used = p.used + n.pool_slots
    FROM next n
    WHERE p.name = n.pool AND p.used + n.pool_slots <= p.slots
    RETURNING p.name
), claimed AS (
    UPDATE setlist.task_instances t
    SET state = 'running',
        try_number = t.try_number + CASE WHEN t.state = 'waiting' THEN 0 ELSE 1 END,
        worker_id = $1,
        started_at = CASE WHEN t.state = 'waiting' THEN t.started_at ELSE clock_timestamp() END,
        ended_at = NULL, retry_at = NULL,
        holds_pool = n.pool IS NOT NULL
    FROM next n
    WHERE t.id = n.id AND (n.pool IS NULL OR EXISTS (SELECT 1 FROM taken))
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
