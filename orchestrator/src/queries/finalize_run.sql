-- Ends a running run once none of its tasks can change any more. A run succeeds when
-- every leaf task succeeded or was skipped, as in Airflow; a cancelled one is cancelled.
UPDATE setlist.dag_runs r
SET state = CASE WHEN r.cancel_requested THEN 'cancelled' WHEN EXISTS (
                SELECT 1 FROM setlist.task_instances
                WHERE run_id = $1 AND is_leaf AND state NOT IN ('success', 'skipped'))
            THEN 'failed' ELSE 'success' END::setlist.run_state,
    ended_at = clock_timestamp()
WHERE r.id = $1 AND r.state = 'running'
  AND NOT EXISTS (
      SELECT 1 FROM setlist.task_instances
      WHERE run_id = $1 AND state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'waiting'))
RETURNING r.state AS "state: RunState", r.alerts
