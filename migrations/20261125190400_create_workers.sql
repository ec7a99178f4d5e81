-- Workers announce themselves and heartbeat; the reaper retries the work of a worker
-- whose heartbeat stopped.
CREATE TABLE setlist.workers (
    id             uuid PRIMARY KEY,
    hostname       text        NOT NULL,
    pid            integer     NOT NULL,
    concurrency    integer     NOT NULL,
    state          text        NOT NULL CHECK (state IN ('active', 'stopped', 'lost')),
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_heartbeat timestamptz NOT NULL DEFAULT clock_timestamp()
);
