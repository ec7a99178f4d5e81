-- A run of a DAG for one logical date. UNIQUE (dag_id, logical_date) is what lets
-- several schedulers create runs concurrently without ever creating one twice.
CREATE TABLE setlist.dag_runs (
    id                  bigserial PRIMARY KEY,
    dag_id              text        NOT NULL REFERENCES setlist.dags (dag_id) ON DELETE CASCADE,
    logical_date        timestamptz NOT NULL,
    data_interval_start timestamptz NOT NULL,
    data_interval_end   timestamptz NOT NULL,
    run_type            text        NOT NULL CHECK (run_type IN ('scheduled', 'manual', 'backfill')),
    state               text        NOT NULL CHECK (state IN ('queued', 'running', 'success', 'failed')),
    conf                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at          timestamptz,
    ended_at            timestamptz,
    UNIQUE (dag_id, logical_date),
    CHECK (data_interval_start <= data_interval_end)
);

CREATE INDEX dag_runs_by_dag_state ON setlist.dag_runs (dag_id, state, logical_date);
