-- One row per try of a task instance, with its log lines beside it.
CREATE TABLE setlist.attempts (
    id         bigserial PRIMARY KEY,
    ti_id      bigint      NOT NULL REFERENCES setlist.task_instances (id) ON DELETE CASCADE,
    try_number integer     NOT NULL,
    worker_id  uuid        NOT NULL,
    state      text        NOT NULL CHECK (state IN ('running', 'success', 'failed')),
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    error      text,
    UNIQUE (ti_id, try_number)
);

CREATE TABLE setlist.attempt_logs (
    attempt_id bigint      NOT NULL REFERENCES setlist.attempts (id) ON DELETE CASCADE,
    seq        integer     NOT NULL,
    logged_at  timestamptz NOT NULL,
    stream     text        NOT NULL CHECK (stream IN ('stdout', 'stderr', 'task')),
    line       text        NOT NULL,
    PRIMARY KEY (attempt_id, seq)
);
