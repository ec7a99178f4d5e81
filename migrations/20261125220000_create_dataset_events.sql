-- Data-triggered runs: a producer (the lander) records that a dataset changed; the
-- scheduler starts a run of every DAG triggered by it, one queued run at a time.
CREATE TABLE setlist.dataset_events (
    id         bigserial PRIMARY KEY,
    dataset    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX dataset_events_by_dataset ON setlist.dataset_events (dataset, id);

-- The last dataset event each DAG has been triggered for.
ALTER TABLE setlist.dags ADD COLUMN last_dataset_event bigint NOT NULL DEFAULT 0;

ALTER TABLE setlist.dag_runs DROP CONSTRAINT dag_runs_run_type_check;
ALTER TABLE setlist.dag_runs ADD CONSTRAINT dag_runs_run_type_check
    CHECK (run_type IN ('scheduled', 'manual', 'backfill', 'triggered'));
