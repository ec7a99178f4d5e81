-- The orchestrator's state lives in its own schema so it can share a database with the warehouse.
CREATE SCHEMA IF NOT EXISTS setlist;

-- One row per DAG file that ever loaded. The definition is the validated DAG as JSON,
-- so readers (workers, the web UI) never need the TOML files.
CREATE TABLE setlist.dags (
    dag_id          text PRIMARY KEY,
    is_paused       boolean     NOT NULL DEFAULT false,
    definition_hash text        NOT NULL,
    definition      jsonb       NOT NULL,
    file_path       text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
