-- Workers claim due pokes as they claim due retries, and a run is unfinished while a
-- task waits.
DROP INDEX setlist.task_instances_ready;
CREATE INDEX task_instances_ready ON setlist.task_instances (id)
    WHERE state IN ('queued', 'up_for_retry', 'waiting');
DROP INDEX setlist.task_instances_unfinished;
CREATE INDEX task_instances_unfinished ON setlist.task_instances (run_id)
    WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'waiting');

-- How many pokes an attempt of a wait made: a wait keeps one attempt (and one log)
-- across the pokes of one try.
ALTER TABLE setlist.attempts ADD COLUMN pokes integer NOT NULL DEFAULT 1;

-- A branching task's output names which of its direct downstream tasks run.
ALTER TABLE setlist.task_instances ADD COLUMN branch boolean NOT NULL DEFAULT false;
