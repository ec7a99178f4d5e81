-- Dynamic task mapping: a task with `map_over` becomes, when it runs, one task instance
-- per element of a list (from an upstream output, the run's params or conf, or the
-- DAG file). The mapped task's row stays as the one its downstream tasks count on: it
-- ends when the last of its instances does, with their outputs in order.
ALTER TABLE setlist.task_instances
    -- On a mapped task: where its list comes from (a JSON array, or a path such as
    -- "upstream.list_files.output.files"), and how many instances may run at once.
    ADD COLUMN map_over jsonb,
    ADD COLUMN max_active_mapped integer,
    -- On the mapped task: its instances not ended yet.
    ADD COLUMN map_pending integer,
    -- On an instance: the task it was mapped from, its index and its element.
    ADD COLUMN map_parent text,
    ADD COLUMN map_index integer,
    ADD COLUMN map_element jsonb;

-- An instance's end finds the next of its siblings to queue.
CREATE INDEX task_instances_mapped ON setlist.task_instances (run_id, map_parent, map_index)
    WHERE map_parent IS NOT NULL;
-- Under `max_active_mapped`, each instance's end queues the first one still waiting:
-- found at once however many have ended.
CREATE INDEX task_instances_mapped_scheduled ON setlist.task_instances (run_id, map_parent, map_index)
    WHERE state = 'scheduled' AND map_parent IS NOT NULL;
