-- Ends a running run once none of its tasks can change any more. A run succeeds when
-- every leaf task succeeded or was skipped, as in Airflow.
WITH s AS (
    SELECT count(*) FILTER (WHERE state NOT IN ('success', 'failed', 'upstream_failed', 'skipped')) AS pending,
           count(*) FILTER (WHERE is_leaf AND state NOT IN ('success', 'skipped')) AS bad_leaves
    FROM setlist.task_instances
    WHERE run_id = $1
)
UPDATE setlist.dag_runs r
SET state = CASE WHEN s.bad_leaves > 0 THEN 'failed' ELSE 'success' END,
    ended_at = clock_timestamp()
FROM s
WHERE r.id = $1 AND r.state = 'running' AND s.pending = 0
RETURNING r.state
