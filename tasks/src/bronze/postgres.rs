//! The PostgreSQL warehouse: bronze rows arrive by streaming COPY, not row by row.

use std::collections::HashSet;

use anyhow::Context;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use async_trait::async_trait;
use sqlx::PgPool;
use uuid::Uuid;

use super::Warehouse;
use crate::raw::parquet::schema;

/// Bronze on PostgreSQL: `bronze.plays` and `bronze.load_manifest`.
pub struct Postgres {
    pool: PgPool,
}

impl Postgres {
    /// Connects to the warehouse at `url`, for a task given its own warehouse URL.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = PgPool::connect(url)
            .await
            .context("Failed to connect to the PostgreSQL warehouse")?;
        Ok(Self { pool })
    }

    /// Uses an existing pool, such as the state store's when it doubles as the warehouse.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The raw columns (the raw object's schema) as PostgreSQL types.
fn raw_columns() -> Vec<(String, &'static str)> {
    schema()
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Utf8 => "text",
                DataType::Int32 => "integer",
                DataType::Int64 => "bigint",
                DataType::Boolean => "boolean",
                DataType::Timestamp(_, _) => "timestamptz",
                other => unreachable!("the raw schema has no {other} column"),
            };
            (f.name().clone(), ty)
        })
        .collect()
}

/// `bronze.plays`: the raw columns as landed, plus where and when each row was
/// loaded. No constraints on the event itself: bronze keeps what arrived; silver
/// types, validates and de-duplicates.
fn create_plays() -> String {
    let columns: Vec<String> = raw_columns()
        .into_iter()
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS bronze.plays ({},
             source_object text NOT NULL,
             load_id uuid NOT NULL,
             loaded_at timestamptz NOT NULL DEFAULT now())",
        columns.join(", ")
    )
}

/// Microseconds between the Unix epoch and PostgreSQL's, 2000-01-01.
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The rows of `batch` in COPY's binary format (the raw columns, then
/// source_object, load_id and loaded_at): no text parsing on the server.
fn copy_binary(
    key: &str,
    load_id: Uuid,
    loaded_at: chrono::DateTime<chrono::Utc>,
    batch: &RecordBatch,
    out: &mut Vec<u8>,
) {
    let columns = batch.columns();
    let count = (columns.len() + 3) as i16;
    let loaded_at = (loaded_at.timestamp_micros() - PG_EPOCH_OFFSET_US).to_be_bytes();
    for row in 0..batch.num_rows() {
        out.extend_from_slice(&count.to_be_bytes());
        for column in columns {
            if column.is_null(row) {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            match column.data_type() {
                DataType::Utf8 => field(out, column.as_string::<i32>().value(row).as_bytes()),
                DataType::Int64 => field(
                    out,
                    &column.as_primitive::<Int64Type>().value(row).to_be_bytes(),
                ),
                DataType::Int32 => field(
                    out,
                    &column.as_primitive::<Int32Type>().value(row).to_be_bytes(),
                ),
                DataType::Boolean => field(out, &[column.as_boolean().value(row) as u8]),
                DataType::Timestamp(_, _) => {
                    let ms = column.as_primitive::<TimestampMillisecondType>().value(row);
                    field(out, &(ms * 1000 - PG_EPOCH_OFFSET_US).to_be_bytes());
                }
                other => unreachable!("the raw schema has no {other} column"),
            }
        }
        field(out, key.as_bytes());
        field(out, load_id.as_bytes());
        field(out, &loaded_at);
    }
}

#[async_trait]
impl Warehouse for Postgres {
    async fn ensure_bronze(&self) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        // One creator at a time: concurrent CREATE ... IF NOT EXISTS can still collide.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('setlist.bronze'))")
            .execute(&mut *tx)
            .await?;
        sqlx::query("CREATE SCHEMA IF NOT EXISTS bronze")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&create_plays()).execute(&mut *tx).await?;
        // A field added to the play since the table was made: its column, empty for
        // the rows loaded before. Only then: ALTER TABLE locks the table even when the
        // column exists, and dbt reads bronze while the loader runs.
        let have: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'bronze' AND table_name = 'plays'",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (name, ty) in raw_columns() {
            if !have.contains(&name) {
                sqlx::query(&format!("ALTER TABLE bronze.plays ADD COLUMN {name} {ty}"))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("CREATE INDEX IF NOT EXISTS plays_loaded_at ON bronze.plays (loaded_at)")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bronze.load_manifest (
                 object_key text PRIMARY KEY,
                 load_id    uuid        NOT NULL,
                 rows       bigint      NOT NULL,
                 loaded_at  timestamptz NOT NULL DEFAULT now()
             )",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn loaded(&self, keys: &[String]) -> anyhow::Result<HashSet<String>> {
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT object_key FROM bronze.load_manifest WHERE object_key = ANY ($1)",
        )
        .bind(keys)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.into_iter().collect())
    }

    async fn load(
        &self,
        key: &str,
        load_id: Uuid,
        batches: &[RecordBatch],
    ) -> anyhow::Result<Option<u64>> {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut tx = self.pool.begin().await?;
        // Loads commit one at a time, each stamped once it holds the lock, so the rows
        // past any committed loaded_at are exactly those loaded since: silver's
        // incremental models read bronze by that high-water mark.
        let loaded_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock(hashtext('setlist.bronze.load'))) AS locked",
        )
        .fetch_one(&mut *tx)
        .await?;
        // The manifest row next: a second loader of this object finds it, and skips.
        let claimed = sqlx::query(
            "INSERT INTO bronze.load_manifest (object_key, load_id, rows, loaded_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (object_key) DO NOTHING",
        )
        .bind(key)
        .bind(load_id)
        .bind(rows as i64)
        .bind(loaded_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        let columns: Vec<String> = schema().fields().iter().map(|f| f.name().clone()).collect();
        let copy = format!(
            "COPY bronze.plays ({}, source_object, load_id, loaded_at) FROM STDIN (FORMAT binary)",
            columns.join(", ")
        );
        let mut sink = tx.copy_in_raw(&copy).await?;
        let mut buffer = Vec::with_capacity(8 << 20);
        buffer.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buffer.extend_from_slice(&0i32.to_be_bytes()); // flags
        buffer.extend_from_slice(&0i32.to_be_bytes()); // header extension
        for batch in batches {
            copy_binary(key, load_id, loaded_at, batch, &mut buffer);
            if buffer.len() > 4 << 20 {
                sink.send(std::mem::take(&mut buffer)).await?;
            }
        }
        buffer.extend_from_slice(&(-1i16).to_be_bytes());
        sink.send(buffer).await?;
        sink.finish()
            .await
            .with_context(|| format!("COPY of {key} failed"))?;
        tx.commit().await?;
        Ok(Some(rows as u64))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_unix_epoch_is_minus_thirty_years_in_postgres_time() {
        // 2000-01-01T00:00:00Z in Unix microseconds.
        assert_eq!(super::PG_EPOCH_OFFSET_US, 946_684_800 * 1_000_000);
    }
}
