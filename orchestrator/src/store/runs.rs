//! Creating runs and starting them.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool};

use super::{SCHEDULER_CHANNEL, WORK_CHANNEL, notify, transitions};
use crate::dag::Dag;
use crate::error::{Error, Result};
use crate::schedule::Interval;
use crate::state::{FailureReason, RunState, TaskState};

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::Type)]
#[sqlx(type_name = "setlist.run_type", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    /// Created by the scheduler for a due interval of the DAG's schedule.
    Scheduled,
    /// Triggered by a person (CLI, API or pages), with an optional conf.
    Manual,
    /// Created by a backfill to fill past intervals on request.
    Backfill,
    /// Started because a dataset the DAG is triggered by changed, or by another DAG's
    /// `trigger_dag` task.
    Triggered,
}

impl std::fmt::Display for RunType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl RunType {
    /// The name the database and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Scheduled => "scheduled",
            RunType::Manual => "manual",
            RunType::Backfill => "backfill",
            RunType::Triggered => "triggered",
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone, FromRow)]
pub struct RunRow {
    /// The run's id, which the CLI, the API and the pages address it by.
    pub id: i64,
    /// The DAG it is a run of.
    pub dag_id: String,
    /// Its logical date; one run per DAG per logical date.
    pub logical_date: DateTime<Utc>,
    /// The start of the data interval it processes.
    pub data_interval_start: DateTime<Utc>,
    /// The end of the data interval it processes (exclusive).
    pub data_interval_end: DateTime<Utc>,
    /// How it came to be, for filters and the run's page.
    pub run_type: RunType,
    /// Where it stands, for listings, filters and the run page.
    pub state: RunState,
    /// The JSON conf given at trigger time, handed to every task.
    pub conf: Value,
    /// When it was created, to show how long it waited in the queue.
    pub created_at: DateTime<Utc>,
    /// When it left the queue, if it has.
    pub started_at: Option<DateTime<Utc>>,
    /// When it got its final state, if it has.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended as it did, when something other than its tasks decided (a cancel).
    pub end_reason: Option<String>,
}

/// A task instance as stored, for listings.
#[derive(Debug, Clone, FromRow)]
pub struct TaskInstanceRow {
    /// The task instance's row id, which, unlike `task_id`, is unique across runs.
    pub id: i64,
    /// The task's id within the DAG, to match it to its spec.
    pub task_id: String,
    /// The task kind it runs, for listings.
    pub kind: String,
    /// Where it stands, for listings, filters and the run page.
    pub state: TaskState,
    /// Why it failed, when it did.
    pub failure_reason: Option<FailureReason>,
    /// Which try it is on (0 before its first).
    pub try_number: i32,
    /// All the tries it gets, to show how many are left.
    pub max_tries: i32,
    /// When it was last queued, to show how long it waited for a worker.
    pub queued_at: Option<DateTime<Utc>>,
    /// When its latest try started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it got its final state, if it has.
    pub ended_at: Option<DateTime<Utc>>,
    /// When its retry is due, while it is up for retry.
    pub retry_at: Option<DateTime<Utc>>,
    /// What it returned on success, read by its downstream tasks.
    pub output: Option<Value>,
    /// The queue it waits in.
    pub queue: String,
}

/// How much lower a backfill run's tasks are claimed than the same tasks of a
/// scheduled or manual run.
pub const BACKFILL_PRIORITY: i32 = -100;

/// Inserts a queued run and its task instances, unless a run of the DAG already has
/// that logical date. Returns the new run's id, or `None` when it existed.
pub async fn create(
    conn: &mut PgConnection,
    dag: &Dag,
    logical_date: DateTime<Utc>,
    interval: Interval,
    run_type: RunType,
    conf: &Value,
) -> Result<Option<i64>> {
    let params = crate::template::run_params(&dag.params, conf);
    let run_id: Option<i64> = sqlx::query_scalar!(
        "INSERT INTO setlist.dag_runs
            (dag_id, logical_date, data_interval_start, data_interval_end, run_type, state, conf, params,
             alerts, timeout_ms)
         VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9)
         ON CONFLICT (dag_id, logical_date) DO NOTHING
         RETURNING id",
        dag.id,
        logical_date,
        interval.start,
        interval.end,
        run_type as RunType,
        conf,
        params,
        dag.alerts.to_json(),
        dag.dagrun_timeout.map(|d| d.as_millis() as i64),
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(run_id) = run_id else {
        return Ok(None);
    };

    let n = dag.tasks.len();
    let (mut ids, mut kinds, mut params, mut upstream, mut leaf) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut task_alerts = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let (mut pools, mut pool_slots, mut queues) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut branches, mut maps, mut map_limits) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut rules, mut retries, mut delays, mut backoffs, mut max_delays, mut timeouts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for t in &dag.tasks {
        ids.push(t.id.clone());
        kinds.push(t.kind.clone());
        params.push(t.params.clone());
        // Postgres has no arrays of arrays of varying length: send upstream ids as JSON.
        upstream.push(serde_json::to_value(&t.depends_on).expect("strings serialise"));
        leaf.push(dag.is_leaf(&t.id));
        rules.push(t.trigger_rule.as_str());
        retries.push(t.retry.retries as i32);
        delays.push(t.retry.delay.as_millis() as i64);
        backoffs.push(t.retry.backoff);
        max_delays.push(t.retry.max_delay.as_millis() as i64);
        timeouts.push(t.timeout.map(|d| d.as_millis() as i64));
        branches.push(t.branch);
        maps.push(
            t.map_over
                .as_ref()
                .map(|m| serde_json::to_value(m).expect("a list or a path serialises")),
        );
        map_limits.push(t.max_active_mapped.map(|m| m as i32));
        task_alerts.push(t.alerts.to_json());
        let shift = if run_type == RunType::Backfill {
            BACKFILL_PRIORITY
        } else {
            0
        };
        priorities.push(t.priority.unwrap_or(dag.priority).saturating_add(shift));
        pools.push(t.pool.clone());
        pool_slots.push(t.pool_slots as i32);
        queues.push(t.queue.clone().unwrap_or_else(|| "default".into()));
    }
    sqlx::query_file!(
        "src/queries/insert_task_instances.sql",
        run_id,
        &ids,
        &kinds,
        &params,
        &upstream,
        &leaf,
        &rules as &[&str],
        &retries,
        &delays,
        &backoffs,
        &max_delays,
        &timeouts as &[Option<i64>],
        &branches,
        &maps as &[Option<Value>],
        &map_limits as &[Option<i32>],
        &task_alerts as &[Option<Value>],
        &priorities,
        &pools as &[Option<String>],
        &pool_slots,
        &queues,
    )
    .execute(&mut *conn)
    .await?;
    Ok(Some(run_id))
}

/// Creates a manual run now with `conf` and wakes the scheduler to start it.
/// Its logical date is now (or `logical_date`); its data interval is the latest
/// complete interval of the schedule, or the empty `[now, now)` for manual DAGs.
pub async fn trigger(
    pool: &PgPool,
    dag: &Dag,
    conf: Value,
    logical_date: Option<DateTime<Utc>>,
) -> Result<i64> {
    trigger_as(pool, dag, conf, logical_date, RunType::Manual).await
}

/// [`trigger`] for a run that is not a person's: one a `trigger_dag` task starts.
pub async fn trigger_as(
    pool: &PgPool,
    dag: &Dag,
    conf: Value,
    logical_date: Option<DateTime<Utc>>,
    run_type: RunType,
) -> Result<i64> {
    if !conf.is_object() {
        return Err(Error::Invalid("conf must be a JSON object".into()));
    }
    if holds_nul(&conf) {
        return Err(Error::Invalid(
            "conf holds a NUL character (\\u0000), which PostgreSQL's jsonb cannot store".into(),
        ));
    }
    let now = Utc::now().trunc_subsecs(6);
    let logical_date = logical_date.unwrap_or(now);
    let interval = dag
        .schedule
        .latest_complete(logical_date)
        .unwrap_or(Interval {
            start: logical_date,
            end: logical_date,
        });
    let mut tx = pool.begin().await?;
    super::dags::ensure(&mut *tx, dag).await?;
    let created = create(&mut tx, dag, logical_date, interval, run_type, &conf).await?;
    let Some(run_id) = created else {
        return Err(Error::Conflict(format!(
            "DAG `{}` already has a run at logical date {}",
            dag.id,
            logical_date.to_rfc3339()
        )));
    };
    notify(&mut tx, SCHEDULER_CHANNEL, "").await?;
    tx.commit().await?;
    Ok(run_id)
}

/// Whether any key or string in `value` holds U+0000.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// What a backfill did.
#[derive(Debug, Clone, Default)]
pub struct Backfill {
    /// Ids of the runs it created, to report or follow them.
    pub created: Vec<i64>,
    /// Intervals that already had a run, which a backfill leaves alone.
    pub existing: usize,
}

/// Creates backfill runs for every interval whose start lies in `[from, to)`.
pub async fn backfill(
    pool: &PgPool,
    dag: &Dag,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Backfill> {
    if dag.schedule.is_manual() {
        return Err(Error::Invalid(format!(
            "DAG `{}` has no schedule, so it has no intervals to backfill",
            dag.id
        )));
    }
    if from >= to {
        return Err(Error::Invalid(format!(
            "--from ({from}) must be before --to ({to})"
        )));
    }
    const LIMIT: usize = 100_000;
    let intervals = dag.schedule.intervals_starting_between(from, to, LIMIT + 1);
    if intervals.len() > LIMIT {
        return Err(Error::Invalid(format!(
            "the range holds more than {LIMIT} intervals; backfill it in parts"
        )));
    }
    let mut out = Backfill::default();
    let mut tx = pool.begin().await?;
    super::dags::ensure(&mut *tx, dag).await?;
    for interval in intervals {
        match create(
            &mut tx,
            dag,
            interval.start,
            interval,
            RunType::Backfill,
            &Value::Object(Default::default()),
        )
        .await?
        {
            Some(id) => out.created.push(id),
            None => out.existing += 1,
        }
    }
    notify(&mut tx, SCHEDULER_CHANNEL, "").await?;
    tx.commit().await?;
    Ok(out)
}

/// Starts the oldest queued runs of every unpaused DAG, as far as each DAG's
/// max_active_runs allows, and queues their first tasks. Returns how many started.
pub async fn start_queued(pool: &PgPool) -> Result<usize> {
    let dag_ids: Vec<String> = sqlx::query_scalar!(
        r#"SELECT DISTINCT r.dag_id AS "dag_id!" FROM setlist.dag_runs r
           JOIN setlist.dags d USING (dag_id)
           WHERE r.state = 'queued' AND NOT d.is_paused"#,
    )
    .fetch_all(pool)
    .await?;
    let mut started = 0;
    for dag_id in dag_ids {
        let mut tx = pool.begin().await?;
        // Lock the DAG so two schedulers never start more than max_active_runs.
        let dag = sqlx::query!(
            r#"SELECT is_paused, COALESCE((definition->>'max_active_runs')::int, 16) AS "max_active!"
               FROM setlist.dags WHERE dag_id = $1 FOR UPDATE"#,
            dag_id
        )
        .fetch_one(&mut *tx)
        .await?;
        let (paused, max_active) = (dag.is_paused, dag.max_active);
        if paused {
            continue;
        }
        let running: i64 = sqlx::query_scalar!(
            r#"SELECT count(*) AS "running!" FROM setlist.dag_runs WHERE dag_id = $1 AND state = 'running'"#,
            dag_id
        )
        .fetch_one(&mut *tx)
        .await?;
        let room = (max_active as i64 - running).max(0);
        let runs: Vec<i64> = sqlx::query_scalar!(
            "UPDATE setlist.dag_runs SET state = 'running', started_at = clock_timestamp()
             WHERE id IN (SELECT id FROM setlist.dag_runs WHERE dag_id = $1 AND state = 'queued'
                          ORDER BY logical_date LIMIT $2)
             RETURNING id",
            dag_id,
            room
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut queued_any = false;
        for run_id in &runs {
            queued_any |= transitions::evaluate(&mut tx, *run_id).await?;
        }
        if queued_any {
            notify(&mut tx, WORK_CHANNEL, "").await?;
        }
        tx.commit().await?;
        started += runs.len();
    }
    Ok(started)
}

/// The latest runs, newest first, of one DAG or of all.
pub async fn list(pool: &PgPool, dag_id: Option<&str>, limit: i64) -> Result<Vec<RunRow>> {
    Ok(sqlx::query_as!(
        RunRow,
        r#"SELECT id, dag_id, logical_date, data_interval_start, data_interval_end,
                run_type AS "run_type: RunType", state AS "state: RunState", conf,
                created_at, started_at, ended_at, end_reason
         FROM setlist.dag_runs WHERE ($1::text IS NULL OR dag_id = $1)
         ORDER BY logical_date DESC, id DESC LIMIT $2"#,
        dag_id,
        limit
    )
    .fetch_all(pool)
    .await?)
}

/// One run and its task instances.
pub async fn get(pool: &PgPool, run_id: i64) -> Result<(RunRow, Vec<TaskInstanceRow>)> {
    let run: RunRow = sqlx::query_as!(
        RunRow,
        r#"SELECT id, dag_id, logical_date, data_interval_start, data_interval_end,
                run_type AS "run_type: RunType", state AS "state: RunState", conf,
                created_at, started_at, ended_at, end_reason
         FROM setlist.dag_runs WHERE id = $1"#,
        run_id
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("no run with id {run_id}")))?;
    let tasks = sqlx::query_as!(
        TaskInstanceRow,
        r#"SELECT id, task_id, kind, state AS "state: TaskState",
                failure_reason AS "failure_reason: FailureReason", try_number, max_tries,
                queued_at, started_at, ended_at, retry_at, output, queue
         FROM setlist.task_instances WHERE run_id = $1 ORDER BY id"#,
        run_id
    )
    .fetch_all(pool)
    .await?;
    Ok((run, tasks))
}

/// The latest scheduled run's interval, from which the next one follows.
pub async fn latest_scheduled_interval(pool: &PgPool, dag_id: &str) -> Result<Option<Interval>> {
    let row = sqlx::query!(
        "SELECT data_interval_start, data_interval_end FROM setlist.dag_runs
         WHERE dag_id = $1 AND run_type = 'scheduled' ORDER BY logical_date DESC LIMIT 1",
        dag_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Interval {
        start: r.data_interval_start,
        end: r.data_interval_end,
    }))
}

/// The run of `dag_id` at `logical_date`, if there is one: its id and state.
pub async fn at(
    pool: &PgPool,
    dag_id: &str,
    logical_date: DateTime<Utc>,
) -> Result<Option<(i64, RunState)>> {
    Ok(sqlx::query!(
        r#"SELECT id, state AS "state: RunState" FROM setlist.dag_runs
           WHERE dag_id = $1 AND logical_date = $2"#,
        dag_id,
        logical_date,
    )
    .fetch_optional(pool)
    .await?
    .map(|r| (r.id, r.state)))
}

/// The state of task `task_id` in run `run_id`, if the run has that task.
pub async fn task_state(pool: &PgPool, run_id: i64, task_id: &str) -> Result<Option<TaskState>> {
    Ok(sqlx::query_scalar!(
        r#"SELECT state AS "state: TaskState" FROM setlist.task_instances
           WHERE run_id = $1 AND task_id = $2"#,
        run_id,
        task_id,
    )
    .fetch_optional(pool)
    .await?)
}
