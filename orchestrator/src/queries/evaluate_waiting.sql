-- Waiting tasks of a run with how many of their upstream tasks ended in each state.
-- $2 narrows it to the downstream tasks of the ones that just changed (NULL: all).
SELECT d.id, d.task_id, d.trigger_rule,
       count(u.id) AS total,
       count(u.id) FILTER (WHERE u.state = 'success') AS success,
       count(u.id) FILTER (WHERE u.state = 'failed') AS failed,
       count(u.id) FILTER (WHERE u.state = 'upstream_failed') AS upstream_failed,
       count(u.id) FILTER (WHERE u.state = 'skipped') AS skipped
FROM setlist.task_instances d
LEFT JOIN setlist.task_instances u ON u.run_id = d.run_id AND u.task_id = ANY (d.upstream)
WHERE d.run_id = $1
  AND d.state = 'scheduled'
  AND ($2::text[] IS NULL OR d.upstream && $2::text[])
GROUP BY d.id
