-- Alerts: a run's or a task's failure, success or retry sent to notify connections
-- (webhooks, email). Each is written in the transaction that moves the state, and a
-- sender takes it from here, so no alert is lost to a crash and a failing channel never
-- touches the run. One alert per run, task try, event and connection: a run's failure is
-- told once, each failed try of a task once.
CREATE TABLE setlist.alerts (
    id          bigserial   PRIMARY KEY,
    run_id      bigint      NOT NULL REFERENCES setlist.dag_runs (id) ON DELETE CASCADE,
    task_id     text,
    try_number  integer,
    event       text        NOT NULL CHECK (event IN ('failure', 'success', 'retry')),
    connection  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    next_try_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    tries       integer     NOT NULL DEFAULT 0,
    sent_at     timestamptz,
    error       text,
    UNIQUE NULLS NOT DISTINCT (run_id, task_id, try_number, event, connection)
);
CREATE INDEX alerts_due ON setlist.alerts (next_try_at) WHERE sent_at IS NULL;

-- Which connections hear of what, copied from the DAG file when a run is created:
-- {"on_failure": [...], "on_success": [...], "on_retry": [...]}.
ALTER TABLE setlist.dag_runs ADD COLUMN alerts jsonb;
ALTER TABLE setlist.task_instances ADD COLUMN alerts jsonb;
