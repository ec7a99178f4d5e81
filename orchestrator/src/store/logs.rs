//! The lines a task attempt logged.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};

use crate::Result;

/// A stored log line as the CLI, the API and the task page show it.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct LogLine {
    /// The attempt that wrote it, so a page can show one try's log.
    pub try_number: i32,
    /// When the task wrote it.
    pub logged_at: DateTime<Utc>,
    /// `stdout`, `stderr` or `task`, so readers can tell errors from output.
    pub stream: String,
    /// The text as the task or its process wrote it.
    pub line: String,
}

/// One attempt's log, in order: try `try_number`, or the latest.
pub async fn attempt(
    pool: &PgPool,
    run_id: i64,
    task_id: &str,
    try_number: Option<i32>,
) -> Result<Vec<LogLine>> {
    Ok(sqlx::query_as!(
        LogLine,
        "SELECT a.try_number, l.logged_at, l.stream, l.line
         FROM setlist.task_instances t
         JOIN setlist.attempts a ON a.ti_id = t.id
         JOIN setlist.attempt_logs l ON l.attempt_id = a.id
         WHERE t.run_id = $1 AND t.task_id = $2
           AND a.try_number = COALESCE($3, (SELECT max(try_number) FROM setlist.attempts WHERE ti_id = t.id))
         ORDER BY l.seq",
        run_id,
        task_id,
        try_number as Option<i32>,
    )
    .fetch_all(pool)
    .await?)
}

/// The lines of one attempt after line `after_seq`, with their sequence numbers, for
/// following a log while the task runs.
pub async fn since(
    pool: &PgPool,
    run_id: i64,
    task_id: &str,
    try_number: i32,
    after_seq: i32,
) -> Result<Vec<(i32, LogLine)>> {
    let rows = sqlx::query!(
        "SELECT l.seq, a.try_number, l.logged_at, l.stream, l.line
         FROM setlist.task_instances t
         JOIN setlist.attempts a ON a.ti_id = t.id AND a.try_number = $3
         JOIN setlist.attempt_logs l ON l.attempt_id = a.id AND l.seq > $4
         WHERE t.run_id = $1 AND t.task_id = $2
         ORDER BY l.seq",
        run_id,
        task_id,
        try_number,
        after_seq,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.seq,
                LogLine {
                    try_number: r.try_number,
                    logged_at: r.logged_at,
                    stream: r.stream,
                    line: r.line,
                },
            )
        })
        .collect())
}
