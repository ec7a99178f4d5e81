//! Stores an attempt's log lines in batches, off the task's path.

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::task::{LogLine, LogSink};

const MAX_BATCH: usize = 1000;

/// Starts a writer for `attempt_id`; the returned handle finishes once every
/// [`LogSink`] clone is dropped and the last lines are stored. A wait's later poke
/// (`continues`) appends after the lines its earlier pokes stored.
pub fn spawn(pool: PgPool, attempt_id: i64, continues: bool) -> (LogSink, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<LogLine>();
    let handle = tokio::spawn(async move {
        let mut seq: i32 = 0;
        if continues {
            let next = sqlx::query_scalar!(
                r#"SELECT coalesce(max(seq) + 1, 0) AS "next!" FROM setlist.attempt_logs WHERE attempt_id = $1"#,
                attempt_id
            )
            .fetch_one(&pool)
            .await;
            match next {
                Ok(next) => seq = next,
                Err(e) => {
                    tracing::warn!(attempt_id, error = %e, "Could not read where the log goes on; this poke's lines may be dropped.")
                }
            }
        }
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let n = batch.len();
            let seqs: Vec<i32> = (seq..seq + n as i32).collect();
            seq += n as i32;
            let at: Vec<_> = batch.iter().map(|l| l.at).collect();
            let streams: Vec<&str> = batch.iter().map(|l| l.stream.as_str()).collect();
            let lines: Vec<String> = batch.drain(..).map(|l| l.line).collect();
            let stored = sqlx::query!(
                "INSERT INTO setlist.attempt_logs (attempt_id, seq, logged_at, stream, line)
                 SELECT $1, * FROM UNNEST($2::int[], $3::timestamptz[], $4::text[], $5::text[])",
                attempt_id,
                &seqs,
                &at,
                &streams as &[&str],
                &lines,
            )
            .execute(&pool)
            .await;
            if let Err(e) = stored {
                tracing::warn!(attempt_id, lines = n, error = %e, "Could not store log lines; they are dropped.");
            }
        }
    });
    (LogSink::new(tx), handle)
}
