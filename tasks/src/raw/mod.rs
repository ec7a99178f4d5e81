//! The raw objects: the contract between the lander, which writes them, and the
//! loader, which reads them into bronze. Their keys ([`object_key`]), their Parquet
//! layout ([`parquet`], following the play event's one declaration) and their ledger
//! ([`ledger`], `setlist.raw_objects`, which says which objects exist and are whole)
//! live here and nowhere else.
//!
//! ```text
//! raw/plays/dt=YYYY-MM-DD/hr=HH/<topic>-<partition>-<first_offset>-<last_offset>.parquet
//! dead_letter/plays/<topic>-<partition>-<first_offset>-<last_offset>.jsonl
//! ```

pub mod ledger;
pub mod parquet;

use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use anyhow::Context;
use arrow_array::RecordBatch;
use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use parquet::schema;

use crate::storage::Storage;

/// The name a batch of one partition's offsets `first..=last` goes by: offsets
/// zero-padded so keys sort, and in the name, so a redo overwrites, never duplicates.
pub fn batch_name(topic: &str, partition: i32, first: i64, last: i64) -> String {
    format!("{topic}-{partition}-{first:020}-{last:020}")
}

/// The key of a batch's object under `prefix`, in the hour of its first event.
pub fn object_key(prefix: &str, first_ts: DateTime<Utc>, name: &str) -> String {
    format!(
        "{prefix}/dt={}/hr={}/{name}.parquet",
        first_ts.format("%Y-%m-%d"),
        first_ts.format("%H")
    )
}

/// The key of a batch's dead letters under `prefix`.
pub fn dead_letter_key(prefix: &str, name: &str) -> String {
    format!("{prefix}/{name}.jsonl")
}

/// Reads one raw object and checks it has the raw layout.
pub async fn read_object(storage: &Storage, key: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let bytes = storage
        .store
        .get(&storage.key(key))
        .await
        .with_context(|| format!("cannot read {key}"))?
        .bytes()
        .await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| anyhow::anyhow!("{key} is not a readable Parquet file: {e}"))?;
    let expected = schema();
    let found = reader.schema().clone();
    for field in expected.fields() {
        match found.field_with_name(field.name()) {
            Ok(f) if f.data_type() == field.data_type() => {}
            Ok(f) => anyhow::bail!(
                "{key}: column {} is {}, expected {}",
                field.name(),
                f.data_type(),
                field.data_type()
            ),
            // An object written before this nullable column existed.
            Err(_) if field.is_nullable() => {}
            Err(_) => anyhow::bail!("{key}: column {} is missing", field.name()),
        }
    }
    let batches: Result<Vec<RecordBatch>, _> = reader.build()?.collect();
    let batches = batches.map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
    batches
        .into_iter()
        .map(|b| to_schema(&b, &expected).with_context(|| format!("{key}: cannot read")))
        .collect()
}

/// `batch` with the columns of `schema`, in its order: a column the batch lacks (a
/// nullable one added since it was written) is all nulls, one it has beyond the
/// schema is left out.
fn to_schema(batch: &RecordBatch, schema: &arrow_schema::SchemaRef) -> anyhow::Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => c.clone(),
            None => arrow_array::new_null_array(f.data_type(), batch.num_rows()),
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn keys_sort_by_offset_and_name_the_hour_of_the_first_event() {
        let name = batch_name("plays", 3, 42, 1041);
        assert_eq!(name, "plays-3-00000000000000000042-00000000000000001041");
        let ts = Utc.with_ymd_and_hms(2026, 5, 1, 17, 59, 59).unwrap();
        assert_eq!(
            object_key("raw/plays", ts, &name),
            "raw/plays/dt=2026-05-01/hr=17/plays-3-00000000000000000042-00000000000000001041.parquet"
        );
        assert_eq!(
            dead_letter_key("dead_letter/plays", &name),
            "dead_letter/plays/plays-3-00000000000000000042-00000000000000001041.jsonl"
        );
    }
}
