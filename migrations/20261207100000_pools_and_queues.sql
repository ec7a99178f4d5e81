-- Pools: named slot counts shared by every worker and scheduler. A task in a pool is
-- claimed only while the pool has room for its slots; the claim takes them and the
-- attempt's end, however it ends, gives them back, in the same transactions.
CREATE TABLE setlist.pools (
    name  text    PRIMARY KEY,
    slots integer NOT NULL CHECK (slots >= 0),
    used  integer NOT NULL DEFAULT 0 CHECK (used >= 0)
);

-- Queues: a task names one (default `default`); a worker serves some and has some
-- kinds, and claims only tasks of both.
ALTER TABLE setlist.task_instances
    ADD COLUMN pool text,
    ADD COLUMN pool_slots integer NOT NULL DEFAULT 1,
    ADD COLUMN holds_pool boolean NOT NULL DEFAULT false,
    ADD COLUMN queue text NOT NULL DEFAULT 'default';
ALTER TABLE setlist.workers
    ADD COLUMN queues text[] NOT NULL DEFAULT '{default}',
    ADD COLUMN kinds text[];
