-- States become enum types that the Rust enums in orchestrator/src/state.rs map onto,
-- and a failure's reason gets a column of its own instead of living in a message.
CREATE TYPE setlist.task_state AS ENUM (
    'scheduled', 'queued', 'running', 'success', 'failed', 'up_for_retry', 'upstream_failed', 'skipped');
CREATE TYPE setlist.run_state AS ENUM ('queued', 'running', 'success', 'failed');
CREATE TYPE setlist.run_type AS ENUM ('scheduled', 'manual', 'backfill', 'triggered');
CREATE TYPE setlist.attempt_state AS ENUM ('running', 'success', 'failed');
CREATE TYPE setlist.worker_state AS ENUM ('active', 'stopped', 'lost');
CREATE TYPE setlist.failure_reason AS ENUM (
    'error', 'timeout', 'cancelled', 'worker_lost', 'upstream_failed', 'invalid');

-- Partial indexes name states as text; they are made again over the enum.
DROP INDEX setlist.task_instances_ready;
DROP INDEX setlist.task_instances_running_by_worker;
DROP INDEX setlist.task_instances_unfinished;

ALTER TABLE setlist.task_instances
    DROP CONSTRAINT task_instances_state_check,
    ALTER COLUMN state TYPE setlist.task_state USING state::setlist.task_state,
    ADD COLUMN failure_reason setlist.failure_reason;
UPDATE setlist.task_instances SET failure_reason = 'upstream_failed' WHERE state = 'upstream_failed';

CREATE INDEX task_instances_ready ON setlist.task_instances (id)
    WHERE state IN ('queued', 'up_for_retry');
CREATE INDEX task_instances_running_by_worker ON setlist.task_instances (worker_id)
    WHERE state = 'running';
CREATE INDEX task_instances_unfinished ON setlist.task_instances (run_id)
    WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry');

ALTER TABLE setlist.dag_runs
    DROP CONSTRAINT dag_runs_state_check,
    DROP CONSTRAINT dag_runs_run_type_check,
    ALTER COLUMN state TYPE setlist.run_state USING state::setlist.run_state,
    ALTER COLUMN run_type TYPE setlist.run_type USING run_type::setlist.run_type;

ALTER TABLE setlist.attempts
    DROP CONSTRAINT attempts_state_check,
    ALTER COLUMN state TYPE setlist.attempt_state USING state::setlist.attempt_state,
    ADD COLUMN failure_reason setlist.failure_reason;
-- Earlier failures carried their reason in the message only.
UPDATE setlist.attempts SET failure_reason = CASE
        WHEN error LIKE 'timed out%' THEN 'timeout'
        WHEN error = 'cancelled' THEN 'error'  -- a worker's shutdown, which was retried
        WHEN error LIKE 'cancelled%' THEN 'cancelled'
        WHEN error LIKE 'worker % was lost%' THEN 'worker_lost'
        WHEN error LIKE 'invalid params%' OR error LIKE 'this worker has no task kind%' THEN 'invalid'
        ELSE 'error' END::setlist.failure_reason
    WHERE state = 'failed';
UPDATE setlist.task_instances t SET failure_reason = a.failure_reason
    FROM setlist.attempts a
    WHERE t.state = 'failed' AND a.ti_id = t.id AND a.try_number = t.try_number;

ALTER TABLE setlist.workers
    DROP CONSTRAINT workers_state_check,
    ALTER COLUMN state TYPE setlist.worker_state USING state::setlist.worker_state;
