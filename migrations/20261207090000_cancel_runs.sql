-- A whole run can be cancelled (by a person, or by its DAG's dagrun_timeout): its tasks
-- not running fail as cancelled, its running ones are asked to stop, and it ends
-- `cancelled` with the reason kept.
ALTER TYPE setlist.run_state ADD VALUE 'cancelled';
ALTER TABLE setlist.dag_runs
    ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false,
    ADD COLUMN end_reason text,
    -- The DAG's dagrun_timeout when the run was created, in milliseconds.
    ADD COLUMN timeout_ms bigint;
