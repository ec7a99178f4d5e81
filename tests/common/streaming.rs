//! Helpers for tests that need the broker and the S3 server.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_schema::DataType;
use chrono::{SecondsFormat, TimeZone, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use sqlx::PgPool;
use tasks::kafka::KafkaConfig;
use tasks::land::{Land, Lander};
use tasks::simulate::{Simulate, produce};
use tasks::storage::Storage;
use tokio_util::sync::CancellationToken;

pub const S3_ENDPOINT: &str = "http://127.0.0.1:18333";

/// The broker the tests use; panics with the command that starts it when it is down.
pub fn kafka_brokers() -> String {
    let brokers =
        std::env::var("SETLIST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let first = brokers.split(',').next().unwrap().to_string();
    if TcpStream::connect_timeout(&first.parse().expect("host:port"), Duration::from_secs(2))
        .is_err()
    {
        panic!("No Kafka broker answers at {brokers}. Start one with: scripts/kafka.sh");
    }
    brokers
}

/// S3 options for the SeaweedFS that scripts/s3.sh starts; panics when it is down.
pub fn s3_options() -> Vec<(String, String)> {
    if TcpStream::connect_timeout(&"127.0.0.1:18333".parse().unwrap(), Duration::from_secs(2))
        .is_err()
    {
        panic!("No S3 server answers at {S3_ENDPOINT}. Start one with: scripts/s3.sh");
    }
    [
        ("endpoint", S3_ENDPOINT),
        ("access_key_id", "setlist"),
        ("secret_access_key", "setlist-secret"),
        ("region", "us-east-1"),
        ("allow_http", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A fresh folder name for a test's lake.
pub fn lake_dir() -> String {
    std::env::temp_dir()
        .join(unique("lake"))
        .display()
        .to_string()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Waits until the ledger holds `events` landed events for `topic`.
pub async fn wait_for_landed(pool: &PgPool, topic: &str, events: i64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let landed: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(rows + dead_letters), 0)::bigint FROM setlist.raw_objects
             WHERE topic = $1 AND state = 'written'",
        )
        .bind(topic)
        .fetch_one(pool)
        .await
        .unwrap();
        if landed >= events {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {landed} of {events} events landed in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every object under `prefix`, with its bytes.
pub async fn objects(storage: &Storage, prefix: &str) -> Vec<(String, bytes::Bytes)> {
    let metas: Vec<_> = storage
        .store
        .list(Some(&storage.key(prefix)))
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for m in metas {
        let bytes = storage
            .store
            .get(&m.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        out.push((m.location.to_string(), bytes));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The rows of raw Parquet objects as JSON objects in the event's own shape,
/// with the Kafka partition and offset beside each.
pub fn rows(objects: &[(String, bytes::Bytes)]) -> Vec<(Value, i32, i64)> {
    let mut out = Vec::new();
    for (_, bytes) in objects {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            out.extend(batch_rows(&batch.unwrap()));
        }
    }
    out
}

fn batch_rows(batch: &RecordBatch) -> Vec<(Value, i32, i64)> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|i| {
            let mut row = BTreeMap::new();
            let mut partition = 0;
            let mut offset = 0;
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let name = field.name().as_str();
                // Unknown fields of an event, kept as JSON text; absent when none.
                if name == tasks::raw::parquet::EXTRAS {
                    if !column.is_null(i) {
                        let text = column.as_string::<i32>().value(i);
                        row.insert(name.to_string(), serde_json::from_str(text).unwrap());
                    }
                    continue;
                }
                let value = match field.data_type() {
                    DataType::Utf8 => Value::from(column.as_string::<i32>().value(i)),
                    DataType::Boolean => Value::from(column.as_boolean().value(i)),
                    DataType::Int64 => Value::from(column.as_primitive::<Int64Type>().value(i)),
                    DataType::Int32 => Value::from(column.as_primitive::<Int32Type>().value(i)),
                    DataType::Timestamp(_, _) => {
                        let ms = column.as_primitive::<TimestampMillisecondType>().value(i);
                        Value::from(
                            Utc.timestamp_millis_opt(ms)
                                .unwrap()
                                .to_rfc3339_opts(SecondsFormat::Millis, true),
                        )
                    }
                    other => panic!("unexpected column type {other}"),
                };
                match name {
                    "kafka_partition" => partition = value.as_i64().unwrap() as i32,
                    "kafka_offset" => offset = value.as_i64().unwrap(),
                    _ => {
                        row.insert(name.to_string(), value);
                    }
                }
            }
            (Value::Object(row.into_iter().collect()), partition, offset)
        })
        .collect()
}

/// event_id, ts as RFC 3339, user_id, ms_played, track_duration_ms, skipped, offline, region.
pub type BronzeRow = (String, String, String, i64, i64, bool, bool, String);

pub fn simulation(topic: &str, count: u64) -> Simulate {
    Simulate {
        kafka: KafkaConfig {
            brokers: kafka_brokers(),
            topic: topic.to_string(),
            properties: BTreeMap::new(),
        },
        count: Some(count),
        listeners: 2_000,
        artists: 200,
        start: Some(Utc.with_ymd_and_hms(2026, 5, 1, 17, 0, 0).unwrap()),
        history_rate: None,
        ..Simulate::default()
    }
}

/// Produces `count` seeded events to a fresh topic and lands them in a fresh folder.
pub async fn landed(db: &crate::common::TestDb, count: u64, max_rows: usize) -> (String, String) {
    let topic = unique("plays");
    let dir = lake_dir();
    let sim = simulation(&topic, count);
    let kafka = sim.kafka.clone();
    produce(
        &sim,
        CancellationToken::new(),
        Duration::from_secs(60),
        |_, _| {},
    )
    .await
    .unwrap();
    let config = Land {
        kafka,
        group_id: unique("g"),
        max_rows,
        max_age: Duration::from_millis(300),
        ..Land::new(&dir)
    };
    let shutdown = CancellationToken::new();
    let lander = tokio::spawn(
        Lander::new(config, db.pool.clone())
            .unwrap()
            .run(shutdown.clone()),
    );
    wait_for_landed(&db.pool, &topic, count as i64, Duration::from_secs(120)).await;
    shutdown.cancel();
    lander.await.unwrap().unwrap();
    (topic, dir)
}

/// Puts `bytes` into the lake at `key` and records it in the ledger as a written
/// object of `topic` (partition 99 at `offset`), as if the lander had written it:
/// how tests slip a corrupt or foreign object in front of the loader.
pub async fn stray_object(
    pool: &PgPool,
    dir: &str,
    topic: &str,
    key: &str,
    offset: i64,
    bytes: Vec<u8>,
) {
    let storage = Storage::open(dir).unwrap();
    storage
        .store
        .put(&storage.key(key), bytes.into())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO setlist.raw_objects (topic, partition, first_offset, last_offset, object_key, rows, dead_letters, bytes, state, written_at)
         VALUES ($1, 99, $2, $2, $3, 3, 0, 10, 'written', now())",
    )
    .bind(topic)
    .bind(offset)
    .bind(key)
    .execute(pool)
    .await
    .unwrap();
}
