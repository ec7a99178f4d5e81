-- The params a run's templates read (the DAG's [dag] params, each replaced by the conf's
-- value of that name), fixed when the run is created, as its tasks' definitions are:
-- a retry, a cleared task or a backfill renders as the run would have, whatever the
-- DAG file says since.
ALTER TABLE setlist.dag_runs ADD COLUMN params jsonb NOT NULL DEFAULT '{}';
