-- A task of one run. Each row carries a snapshot of the task's definition (kind, params,
-- retry policy, timeout, upstream ids), so a run keeps its shape when the DAG file changes
-- and workers need nothing but this table.
CREATE TABLE setlist.task_instances (
    id                 bigserial PRIMARY KEY,
    run_id             bigint      NOT NULL REFERENCES setlist.dag_runs (id) ON DELETE CASCADE,
    task_id            text        NOT NULL,
    kind               text        NOT NULL,
    params             jsonb       NOT NULL,
    upstream           text[]      NOT NULL,
    is_leaf            boolean     NOT NULL,
    trigger_rule       text        NOT NULL,
    retries            integer     NOT NULL CHECK (retries >= 0),
    retry_delay_ms     bigint      NOT NULL,
    retry_backoff      boolean     NOT NULL,
    max_retry_delay_ms bigint      NOT NULL,
    timeout_ms         bigint,
    state              text        NOT NULL CHECK (state IN (
                           'scheduled', 'queued', 'running', 'success', 'failed',
                           'up_for_retry', 'upstream_failed', 'skipped')),
    try_number         integer     NOT NULL DEFAULT 0,
    max_tries          integer     NOT NULL,
    retry_at           timestamptz,
    worker_id          uuid,
    cancel_requested   boolean     NOT NULL DEFAULT false,
    queued_at          timestamptz,
    started_at         timestamptz,
    ended_at           timestamptz,
    output             jsonb,
    UNIQUE (run_id, task_id)
);

-- Workers claim from this small index only.
CREATE INDEX task_instances_ready ON setlist.task_instances (id)
    WHERE state IN ('queued', 'up_for_retry');
CREATE INDEX task_instances_running_by_worker ON setlist.task_instances (worker_id)
    WHERE state = 'running';
