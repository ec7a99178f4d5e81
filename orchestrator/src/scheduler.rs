//! The scheduler: turns cron ticks into runs, starts queued runs within each DAG's
//! max_active_runs, and reaps lost workers. [`Scheduler::tick`] is one whole pass, so
//! tests drive it with any clock; [`Scheduler::run`] calls it on every wake-up: at
//! the next fire time of any DAG (croner computes it in the DAG's own timezone), when
//! a run is triggered or ends (LISTEN), and every housekeeping interval.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::dag::{Dag, DagBag, Fingerprint, fingerprint, load_dir};
use crate::error::Result;
use crate::registry::Registry;
use crate::store::runs::{self, RunType};
use crate::store::{SCHEDULER_CHANNEL, dags, datasets, transitions, workers};

/// How the scheduler behaves.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// The folder of DAG files to load, and to re-read every reload interval.
    pub dags_dir: PathBuf,
    /// A worker silent for this long is given up and its work retried.
    pub worker_timeout: Duration,
    /// How often to reap lost workers and look for due retries of lost work.
    pub housekeeping_interval: Duration,
    /// How often to re-read the DAG folder even when no file seems changed (a changed,
    /// added or removed file is noticed at the next housekeeping).
    pub reload_interval: Duration,
    /// At most this many runs per DAG are created in one tick (a long catchup
    /// is spread over several ticks).
    pub max_runs_per_tick: usize,
}

impl SchedulerConfig {
    /// A config for `dags_dir` with the defaults the CLI and tests start from.
    pub fn new(dags_dir: impl Into<PathBuf>) -> Self {
        Self {
            dags_dir: dags_dir.into(),
            worker_timeout: Duration::from_secs(30),
            housekeeping_interval: Duration::from_secs(5),
            reload_interval: Duration::from_secs(30),
            max_runs_per_tick: 1000,
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// Runs created for due intervals or for new data, for logs and tests.
    pub runs_created: usize,
    /// Queued runs moved to running under their DAG's max_active_runs.
    pub runs_started: usize,
    /// Attempts handed back because their worker went silent.
    pub attempts_reaped: usize,
    /// Runs given their final state because no task is left to run.
    pub runs_finalized: usize,
    /// Runs cancelled for outliving their DAG's dagrun_timeout.
    pub runs_timed_out: usize,
}

/// Owns the loaded DAGs and drives runs through their life; one per deployment.
pub struct Scheduler {
    pool: PgPool,
    registry: Arc<Registry>,
    config: SchedulerConfig,
    bag: DagBag,
    /// The DAG folder's files at the last reload.
    seen: Fingerprint,
}

impl Scheduler {
    /// A scheduler over `pool`; call `reload` or `run` before it knows any DAG.
    pub fn new(pool: PgPool, registry: Arc<Registry>, config: SchedulerConfig) -> Self {
        Self {
            pool,
            registry,
            config,
            bag: DagBag::default(),
            seen: Fingerprint::default(),
        }
    }

    /// Re-reads the DAG folder and records what it found in the store, where the
    /// pages, the API and the CLI read it: the DAGs that loaded, and every problem of
    /// the files that did not (logged too, with their locations; those files are
    /// skipped until fixed).
    pub async fn reload(&mut self) -> Result<&DagBag> {
        let seen = fingerprint(&self.config.dags_dir);
        let bag = load_dir(&self.config.dags_dir, &self.registry);
        for e in &bag.errors {
            tracing::warn!(error = %e, "DAG file has a problem; it is skipped until fixed.");
        }
        dags::record_parse(&self.pool, &bag).await?;
        self.bag = bag;
        self.seen = seen;
        Ok(&self.bag)
    }

    /// Reloads when a DAG file was added, removed or changed since the last reload.
    pub async fn reload_if_changed(&mut self) -> Result<bool> {
        if fingerprint(&self.config.dags_dir) == self.seen {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    /// The DAGs the last reload found, for callers that list or check them.
    pub fn dags(&self) -> &DagBag {
        &self.bag
    }

    /// One pass: create due runs as of `now`, start queued runs, reap lost workers.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickOutcome> {
        let paused = dags::paused(&self.pool).await?;
        let mut out = TickOutcome::default();
        for dag in &self.bag.dags {
            if paused.get(&dag.id).copied().unwrap_or(false) {
                continue;
            }
            out.runs_created += self.create_due_runs(dag, now).await?;
            if datasets::trigger_if_changed(&self.pool, dag)
                .await?
                .is_some()
            {
                out.runs_created += 1;
                tracing::info!(dag = %dag.id, "Created a run for new data.");
            }
        }
        out.attempts_reaped = workers::reap_lost(&self.pool, self.config.worker_timeout).await?;
        out.runs_timed_out = crate::store::cancel::time_out_runs(&self.pool).await?;
        out.runs_finalized = transitions::finalize_finished_runs(&self.pool).await?;
        out.runs_started = runs::start_queued(&self.pool).await?;
        Ok(out)
    }

    /// Creates the scheduled runs of `dag` whose intervals have ended by `now`.
    async fn create_due_runs(&self, dag: &Dag, now: DateTime<Utc>) -> Result<usize> {
        let schedule = &dag.schedule;
        if schedule.is_manual() {
            return Ok(0);
        }
        let latest_complete = schedule.latest_complete(now);
        let mut next = match runs::latest_scheduled_interval(&self.pool, &dag.id).await? {
            Some(last) => schedule.following(last),
            None => match dag.start_date {
                Some(start) => schedule.interval_starting_at_or_after(start),
                None => latest_complete,
            },
        };
        if !dag.catchup {
            // Without catchup only the latest missed interval runs.
            if let (Some(n), Some(latest)) = (next, latest_complete)
                && n.start < latest.start
            {
                next = Some(latest);
            }
        }
        let mut created = 0;
        let mut conn = self.pool.acquire().await?;
        let conf = serde_json::Value::Object(Default::default());
        while let Some(interval) = next {
            if interval.end > now || created >= self.config.max_runs_per_tick {
                break;
            }
            if runs::create(
                &mut conn,
                dag,
                interval.start,
                interval,
                RunType::Scheduled,
                &conf,
            )
            .await?
            .is_some()
            {
                created += 1;
                tracing::info!(dag = %dag.id, logical_date = %interval.start, "Created scheduled run.");
            }
            next = schedule.following(interval);
        }
        Ok(created)
    }

    /// The earliest time after `now` at which a DAG's next run becomes due.
    pub fn next_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.bag
            .dags
            .iter()
            .filter_map(|d| d.schedule.next_fire_after(now))
            .min()
    }

    /// Runs until `shutdown`, ticking at the next due time of any DAG, when a run is
    /// triggered or ends (LISTEN), and every housekeeping interval. The due time is
    /// worked out again after every wake-up, in each DAG's timezone, so a DST change
    /// or a reloaded DAG file moves it at once.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.reload().await?;
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(SCHEDULER_CHANNEL).await?;
        let mut housekeeping = tokio::time::interval(self.config.housekeeping_interval);
        let mut reload = tokio::time::interval(self.config.reload_interval);
        reload.tick().await;
        tracing::info!(
            dags = self.bag.dags.len(),
            broken = self.bag.errors.len(),
            "Scheduler started."
        );
        loop {
            let due = self.next_due(Utc::now());
            let until_due = async {
                match due.and_then(|at| (at - Utc::now()).to_std().ok()) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None if due.is_some() => {}
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = until_due => {}
                n = listener.recv() => { n?; }
                _ = housekeeping.tick() => { self.reload_if_changed().await?; }
                _ = reload.tick() => { self.reload().await?; }
            }
            match self.tick(Utc::now()).await {
                Ok(o) if o != TickOutcome::default() => tracing::debug!(?o, "Scheduler tick."),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "Scheduler tick failed; retrying at the next wake-up.")
                }
            }
        }
        tracing::info!("Scheduler stopped.");
        Ok(())
    }
}
