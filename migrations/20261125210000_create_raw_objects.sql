-- The lander's ledger: one row per raw object, written BEFORE the object is put
-- (state 'writing') and marked 'written' once it is durable. The last row of a
-- partition is where the lander resumes; a 'writing' row is redone with exactly the
-- same offsets, so a replay overwrites the same key and never makes a second object.
-- The bronze loader finds new objects here.
CREATE TABLE setlist.raw_objects (
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    first_offset    bigint      NOT NULL,
    last_offset     bigint      NOT NULL,
    object_key      text,
    dead_letter_key text,
    rows            integer     NOT NULL,
    dead_letters    integer     NOT NULL,
    bytes           bigint      NOT NULL,
    min_ts          timestamptz,
    max_ts          timestamptz,
    state           text        NOT NULL CHECK (state IN ('writing', 'written')),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    written_at      timestamptz,
    PRIMARY KEY (topic, partition, first_offset),
    CHECK (first_offset <= last_offset)
);

CREATE INDEX raw_objects_written ON setlist.raw_objects (written_at) WHERE state = 'written';
