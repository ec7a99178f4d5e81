//! The lander's record of raw objects in the state store (`setlist.raw_objects`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Channel a loader or the scheduler can LISTEN on; the payload is the object key.
pub const RAW_OBJECTS_CHANNEL: &str = "setlist_raw_objects";

/// Where a partition stands according to the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// The first offset not in any object yet.
    pub next: Option<i64>,
    /// A batch that was announced but maybe not written: redo exactly this range.
    pub pending: Option<(i64, i64)>,
}

/// The written objects of `topic` in the order they were written, for the loader.
pub async fn written_objects(pool: &PgPool, topic: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT object_key FROM setlist.raw_objects
         WHERE topic = $1 AND state = 'written' AND object_key IS NOT NULL
         ORDER BY written_at, partition, first_offset",
    )
    .bind(topic)
    .fetch_all(pool)
    .await
}

/// Where a lander should start reading `partition`, and whether it must redo a batch first.
pub async fn resume(pool: &PgPool, topic: &str, partition: i32) -> sqlx::Result<Resume> {
    let last: Option<(i64, i64, String)> = sqlx::query_as(
        "SELECT first_offset, last_offset, state FROM setlist.raw_objects
         WHERE topic = $1 AND partition = $2 ORDER BY first_offset DESC LIMIT 1",
    )
    .bind(topic)
    .bind(partition)
    .fetch_optional(pool)
    .await?;
    Ok(match last {
        None => Resume::default(),
        Some((first, last, state)) if state == "writing" => Resume {
            next: Some(first),
            pending: Some((first, last)),
        },
        Some((_, last, _)) => Resume {
            next: Some(last + 1),
            pending: None,
        },
    })
}

/// One object about to be written.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The topic the batch was read from.
    pub topic: &'a str,
    /// The partition the batch was read from; one lander at a time writes each.
    pub partition: i32,
    /// The batch's first offset, so the next batch starts after `last_offset`.
    pub first_offset: i64,
    /// The batch's last offset (inclusive).
    pub last_offset: i64,
    /// The Parquet object of the good events, if the batch had any; the bronze loader reads it.
    pub object_key: Option<String>,
    /// The object of events that could not be parsed, if the batch had any.
    pub dead_letter_key: Option<String>,
    /// How many events the Parquet object holds.
    pub rows: i32,
    /// How many events went to the dead-letter object.
    pub dead_letters: i32,
    /// The Parquet object's size, for the pages and capacity checks.
    pub bytes: i64,
    /// The earliest event time in the batch, to find objects by time.
    pub min_ts: Option<DateTime<Utc>>,
    /// The latest event time in the batch, to find objects by time.
    pub max_ts: Option<DateTime<Utc>>,
}

/// Announces an object. Returns false when another lander got there first (the
/// range is no longer the partition's next), in which case this batch is dropped.
pub async fn announce(pool: &PgPool, e: &Entry<'_>) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    // One lander at a time per partition, for the check and the insert together.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), $2)")
        .bind(e.topic)
        .bind(e.partition)
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO setlist.raw_objects
            (topic, partition, first_offset, last_offset, object_key, dead_letter_key, rows, dead_letters,
             bytes, min_ts, max_ts, state)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'writing'
         WHERE NOT EXISTS (SELECT 1 FROM setlist.raw_objects
                           WHERE topic = $1 AND partition = $2 AND last_offset >= $3)",
    )
    .bind(e.topic)
    .bind(e.partition)
    .bind(e.first_offset)
    .bind(e.last_offset)
    .bind(&e.object_key)
    .bind(&e.dead_letter_key)
    .bind(e.rows)
    .bind(e.dead_letters)
    .bind(e.bytes)
    .bind(e.min_ts)
    .bind(e.max_ts)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(inserted == 1)
}

/// Marks an object durable, tells listeners about it, and records a change of the
/// dataset named by the object's prefix (`raw/plays`), which starts the DAGs
/// `triggered_by` it.
pub async fn written(
    pool: &PgPool,
    topic: &str,
    partition: i32,
    first_offset: i64,
    key: Option<&str>,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE setlist.raw_objects SET state = 'written', written_at = clock_timestamp()
         WHERE topic = $1 AND partition = $2 AND first_offset = $3",
    )
    .bind(topic)
    .bind(partition)
    .bind(first_offset)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(RAW_OBJECTS_CHANNEL)
        .bind(key.unwrap_or(""))
        .execute(&mut *tx)
        .await?;
    if let Some(dataset) = key.and_then(|k| k.split("/dt=").next()) {
        orchestrator::store::datasets::publish(&mut tx, dataset)
            .await
            .map_err(|e| match e {
                orchestrator::Error::Database(e) => e,
                other => sqlx::Error::Protocol(other.to_string()),
            })?;
    }
    tx.commit().await
}
