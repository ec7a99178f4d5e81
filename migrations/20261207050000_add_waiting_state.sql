-- A wait (sensor) whose condition is unmet releases its worker and is claimed again
-- at its next poke: the task instance is `waiting`, and so is the attempt it continues.
-- A new enum value cannot be used in the transaction that adds it, so the indexes that
-- name it follow in the next migration.
ALTER TYPE setlist.task_state ADD VALUE 'waiting';
ALTER TYPE setlist.attempt_state ADD VALUE 'waiting';
