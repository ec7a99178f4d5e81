-- Workers claim the highest priority first, then the oldest: a task's `priority` (or
-- its DAG's), lowered for backfill runs so a backfill never starves the live pipeline.
ALTER TABLE setlist.task_instances ADD COLUMN priority integer NOT NULL DEFAULT 0;
DROP INDEX setlist.task_instances_ready;
CREATE INDEX task_instances_ready ON setlist.task_instances (priority DESC, id)
    WHERE state IN ('queued', 'up_for_retry', 'waiting');

-- When the next retry or poke is due, for idle workers to sleep until: the first entry
-- of its own index, not a scan of every ready task.
CREATE INDEX task_instances_due ON setlist.task_instances (retry_at)
    WHERE state IN ('up_for_retry', 'waiting');
