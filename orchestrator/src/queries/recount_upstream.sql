-- Recomputes every upstream counter of a run from the upstream rows themselves;
-- used after a clear, which moves tasks out of their terminal states.
UPDATE setlist.task_instances d
SET up_success = c.success, up_failed = c.failed,
    up_upstream_failed = c.upstream_failed, up_skipped = c.skipped
FROM (
    SELECT d2.id,
           count(u.id) FILTER (WHERE u.state = 'success') AS success,
           count(u.id) FILTER (WHERE u.state = 'failed') AS failed,
           count(u.id) FILTER (WHERE u.state = 'upstream_failed') AS upstream_failed,
           count(u.id) FILTER (WHERE u.state = 'skipped') AS skipped
    FROM setlist.task_instances d2
    LEFT JOIN setlist.task_instances u ON u.run_id = d2.run_id AND u.task_id = ANY (d2.upstream)
    WHERE d2.run_id = $1
    GROUP BY d2.id
) c
WHERE d.id = c.id
