-- Per task instance, how many of its upstream tasks ended in each state. A task's end
-- bumps its downstream counters, so deciding a fan-in of N costs O(1) per upstream end
-- instead of re-reading N upstream rows each time.
ALTER TABLE setlist.task_instances
    ADD COLUMN up_success         integer NOT NULL DEFAULT 0,
    ADD COLUMN up_failed          integer NOT NULL DEFAULT 0,
    ADD COLUMN up_upstream_failed integer NOT NULL DEFAULT 0,
    ADD COLUMN up_skipped         integer NOT NULL DEFAULT 0;

-- Finding whether a run still has unfinished tasks is one probe of this index.
CREATE INDEX task_instances_unfinished ON setlist.task_instances (run_id)
    WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry');
