//! The scheduler: turns cron ticks into runs, starts queued runs within each DAG's
//! max_active_runs, and reaps lost workers. [`Scheduler::tick`] is one whole pass, so
//! tests drive it with any clock; [`Scheduler::run`] calls it on every wake-up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::dag::{Dag, DagBag, load_dir};
use crate::error::Result;
use crate::registry::Registry;
use crate::store::runs::{self, RunType};
use crate::store::{SCHEDULER_CHANNEL, dags, datasets, transitions, workers};

/// How the scheduler behaves.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub dags_dir: PathBuf,
    /// A worker silent for this long is given up and its work retried.
    pub worker_timeout: Duration,
    /// How often to reap lost workers and look for due retries of lost work.
    pub housekeeping_interval: Duration,
    /// How often to re-read the DAG folder.
    pub reload_interval: Duration,
    /// At most this many runs per DAG are created in one tick (a long catchup
    /// is spread over several ticks).
    pub max_runs_per_tick: usize,
}

impl SchedulerConfig {
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
    pub runs_created: usize,
    pub runs_started: usize,
    pub attempts_reaped: usize,
    pub runs_finalized: usize,
}

pub struct Scheduler {
    pool: PgPool,
    registry: Arc<Registry>,
    config: SchedulerConfig,
    bag: DagBag,
}

impl Scheduler {
    pub fn new(pool: PgPool, registry: Arc<Registry>, config: SchedulerConfig) -> Self {
        Self {
            pool,
            registry,
            config,
            bag: DagBag::default(),
        }
    }

    /// Re-reads the DAG folder and records the DAGs that loaded. Broken files are
    /// logged with their locations and skipped.
    pub async fn reload(&mut self) -> Result<&DagBag> {
        let bag = load_dir(&self.config.dags_dir, &self.registry);
        for e in &bag.errors {
            tracing::warn!(error = %e, "DAG file has a problem; it is skipped until fixed.");
        }
        dags::sync(&self.pool, &bag).await?;
        self.bag = bag;
        Ok(&self.bag)
    }

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

    /// Runs until `shutdown`: ticks at every minute (by tokio-cron-scheduler), when a run
    /// is triggered or ends (LISTEN), and every housekeeping interval.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.reload().await?;
        let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
        let cron = JobScheduler::new().await?;
        // One UTC job at second 0 of every minute: DAG schedules have minute
        // resolution, and the interval arithmetic (with each DAG's timezone and DST)
        // happens in `tick`. Per-DAG jobs would fix each timezone's UTC offset at
        // creation and drift by an hour after a DST change.
        let tx = wake_tx.clone();
        cron.add(Job::new_async("0 * * * * *", move |_, _| {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx.try_send(());
            })
        })?)
        .await?;
        cron.start().await?;

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
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake_rx.recv() => {}
                n = listener.recv() => { n?; }
                _ = housekeeping.tick() => {}
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
        let mut cron = cron;
        cron.shutdown().await?;
        tracing::info!("Scheduler stopped.");
        Ok(())
    }
}
