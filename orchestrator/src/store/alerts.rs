//! The alerts outbox: an alert is written in the transaction that ends a task or a run
//! (so it is never lost, nor sent for a move that rolled back), once per run, task,
//! event and connection; senders claim due ones with SKIP LOCKED, and a failed send is
//! tried again later with backoff, never touching the run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection, PgPool};

use super::{ALERTS_CHANNEL, notify};
use crate::dag::Alerts;
use crate::error::Result;

/// How many times a send is tried before the alert is given up (its error kept).
pub const MAX_TRIES: i32 = 8;

/// What happened, as the alerts table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The run or task failed.
    Failure,
    /// It succeeded.
    Success,
    /// A task's attempt failed and it will be tried again.
    Retry,
}

impl Event {
    /// The name the table keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failure => "failure",
            Event::Success => "success",
            Event::Retry => "retry",
        }
    }

    fn who(self, alerts: &Alerts) -> &[String] {
        match self {
            Event::Failure => &alerts.on_failure,
            Event::Success => &alerts.on_success,
            Event::Retry => &alerts.on_retry,
        }
    }
}

/// Writes the alerts `alerts` (a run's or a task's, as stored) asks for on `event`.
/// The caller's transaction decides whether they exist.
pub(super) async fn enqueue(
    conn: &mut PgConnection,
    run_id: i64,
    task: Option<(&str, i32)>,
    event: Event,
    alerts: Option<&serde_json::Value>,
) -> Result<()> {
    let Some(alerts) = alerts.and_then(|a| serde_json::from_value::<Alerts>(a.clone()).ok()) else {
        return Ok(());
    };
    let to = event.who(&alerts);
    if to.is_empty() {
        return Ok(());
    }
    let added = sqlx::query!(
        "INSERT INTO setlist.alerts (run_id, task_id, try_number, event, connection)
         SELECT $1, $2, $3, $4, c FROM UNNEST($5::text[]) AS c
         ON CONFLICT DO NOTHING",
        run_id,
        task.map(|t| t.0),
        task.map(|t| t.1),
        event.as_str(),
        to,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if added > 0 {
        notify(conn, ALERTS_CHANNEL, "").await?;
    }
    Ok(())
}

/// An alert a sender claimed, with what its message says.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Due {
    /// The alert's id, to record its end.
    pub id: i64,
    /// The run it is about.
    pub run_id: i64,
    /// The run's DAG.
    pub dag_id: String,
    /// The run's logical date.
    pub logical_date: DateTime<Utc>,
    /// The task it is about; `None` for the run as a whole.
    pub task_id: Option<String>,
    /// The task's try it is about.
    pub try_number: Option<i32>,
    /// `failure`, `success` or `retry`.
    pub event: String,
    /// The notify connection to send through.
    pub connection: String,
    /// Which try of the send this is, from 1.
    pub tries: i32,
    /// The error the task's (or, for a run, its first failed task's) last attempt ended with.
    pub error: Option<String>,
    /// The task whose error that is.
    pub failed_task: Option<String>,
}

/// Claims up to `limit` due alerts, pushing each one's next try back (1 min, doubling)
/// in case this sender dies before it records the send.
pub async fn claim_due(pool: &PgPool, limit: i64) -> Result<Vec<Due>> {
    Ok(sqlx::query_as!(
        Due,
        r#"WITH due AS (
               SELECT id FROM setlist.alerts
               WHERE sent_at IS NULL AND tries < $2 AND next_try_at <= clock_timestamp()
               ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
           ), claimed AS (
               UPDATE setlist.alerts a
               SET tries = a.tries + 1,
                   next_try_at = clock_timestamp() + make_interval(secs => 60 * 2 ^ a.tries)
               FROM due WHERE a.id = due.id
               RETURNING a.*
           )
           SELECT c.id, c.run_id, r.dag_id, r.logical_date, c.task_id, c.try_number, c.event, c.connection,
                  c.tries, f.error AS "error?", f.task_id AS "failed_task?"
           FROM claimed c
           JOIN setlist.dag_runs r ON r.id = c.run_id
           LEFT JOIN LATERAL (
               SELECT t.task_id, a.error FROM setlist.task_instances t
               JOIN setlist.attempts a ON a.ti_id = t.id
                AND a.try_number = coalesce(c.try_number, t.try_number)
               WHERE t.run_id = c.run_id AND a.error IS NOT NULL
                 AND (t.task_id = c.task_id OR (c.task_id IS NULL AND t.state = 'failed'))
               ORDER BY t.ended_at LIMIT 1
           ) f ON true
           ORDER BY c.id"#,
        limit,
        MAX_TRIES,
    )
    .fetch_all(pool)
    .await?)
}

/// Records that alert `id` was sent.
pub async fn sent(pool: &PgPool, id: i64) -> Result<()> {
    sqlx::query!(
        "UPDATE setlist.alerts SET sent_at = clock_timestamp(), error = NULL WHERE id = $1",
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that sending alert `id` failed with `error`; it is tried again `retry_in`
/// from now, until [`MAX_TRIES`], or (`None`) never again.
pub async fn failed(pool: &PgPool, id: i64, error: &str, retry_in: Option<Duration>) -> Result<()> {
    sqlx::query!(
        "UPDATE setlist.alerts SET error = $2,
             next_try_at = clock_timestamp() + make_interval(secs => coalesce($3::float8, 0)),
             tries = CASE WHEN $3::float8 IS NULL THEN $4 ELSE tries END
         WHERE id = $1",
        id,
        error,
        retry_in.map(|d| d.as_secs_f64()),
        MAX_TRIES,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// When the next alert is due, for a sender to sleep until.
pub async fn next_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar!(
        "SELECT min(next_try_at) FROM setlist.alerts WHERE sent_at IS NULL AND tries < $1",
        MAX_TRIES
    )
    .fetch_one(pool)
    .await?)
}

/// The last `n` log lines of a run's task's try `try_number` (default: its latest),
/// oldest first.
pub async fn last_lines(
    pool: &PgPool,
    run_id: i64,
    task_id: &str,
    try_number: Option<i32>,
    n: i64,
) -> Result<Vec<String>> {
    let mut lines: Vec<String> = sqlx::query_scalar!(
        "SELECT l.line FROM setlist.task_instances t
         JOIN setlist.attempts a ON a.ti_id = t.id AND a.try_number = coalesce($4, t.try_number)
         JOIN setlist.attempt_logs l ON l.attempt_id = a.id
         WHERE t.run_id = $1 AND t.task_id = $2
         ORDER BY l.seq DESC LIMIT $3",
        run_id,
        task_id,
        n,
        try_number,
    )
    .fetch_all(pool)
    .await?;
    lines.reverse();
    Ok(lines)
}

/// An alert as the pages and the API show it.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct AlertRow {
    /// Its id.
    pub id: i64,
    /// The task it is about; `None` for the run.
    pub task_id: Option<String>,
    /// `failure`, `success` or `retry`.
    pub event: String,
    /// Where it goes.
    pub connection: String,
    /// How many sends were tried.
    pub tries: i32,
    /// When it was sent; `None` while it is not.
    pub sent_at: Option<DateTime<Utc>>,
    /// Why the last send failed.
    pub error: Option<String>,
}

/// A run's alerts, oldest first.
pub async fn of_run(pool: &PgPool, run_id: i64) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as!(
        AlertRow,
        "SELECT id, task_id, event, connection, tries, sent_at, error
         FROM setlist.alerts WHERE run_id = $1 ORDER BY id",
        run_id
    )
    .fetch_all(pool)
    .await?)
}
