//! The raw Parquet layout: the event's own fields, typed, plus the Kafka partition
//! and offset each row came from.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::play::PlayEvent;

const STRINGS: [&str; 16] = [
    "event_id",
    "user_id",
    "session_id",
    "track_id",
    "track_name",
    "artist_id",
    "artist_name",
    "album_name",
    "reason_start",
    "reason_end",
    "platform",
    "device_type",
    "conn_country",
    "region",
    "city",
    "subscription",
];

/// The schema of every raw object.
pub fn schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        s("event_id"),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        s("user_id"),
        s("session_id"),
        s("track_id"),
        s("track_name"),
        s("artist_id"),
        s("artist_name"),
        s("album_name"),
        Field::new("ms_played", DataType::Int64, false),
        Field::new("track_duration_ms", DataType::Int64, false),
        s("reason_start"),
        s("reason_end"),
        Field::new("skipped", DataType::Boolean, false),
        Field::new("shuffle", DataType::Boolean, false),
        Field::new("offline", DataType::Boolean, false),
        s("platform"),
        s("device_type"),
        s("conn_country"),
        s("region"),
        s("city"),
        s("subscription"),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
    ]))
}

/// Column builders for one batch.
pub struct BatchBuilder {
    strings: Vec<StringBuilder>,
    ts: TimestampMillisecondBuilder,
    ms_played: Int64Builder,
    duration: Int64Builder,
    skipped: BooleanBuilder,
    shuffle: BooleanBuilder,
    offline: BooleanBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    pub rows: usize,
    pub first_ts: Option<DateTime<Utc>>,
    pub min_ts: Option<DateTime<Utc>>,
    pub max_ts: Option<DateTime<Utc>>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self {
            strings: (0..STRINGS.len()).map(|_| StringBuilder::new()).collect(),
            ts: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            ms_played: Int64Builder::new(),
            duration: Int64Builder::new(),
            skipped: BooleanBuilder::new(),
            shuffle: BooleanBuilder::new(),
            offline: BooleanBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            rows: 0,
            first_ts: None,
            min_ts: None,
            max_ts: None,
        }
    }
}

impl BatchBuilder {
    pub fn append(&mut self, e: &PlayEvent<'_>, partition: i32, offset: i64) {
        let mut id = uuid::Uuid::encode_buffer();
        let values: [&str; 16] = [
            e.event_id.hyphenated().encode_lower(&mut id),
            &e.user_id,
            &e.session_id,
            &e.track_id,
            &e.track_name,
            &e.artist_id,
            &e.artist_name,
            &e.album_name,
            &e.reason_start,
            &e.reason_end,
            &e.platform,
            &e.device_type,
            &e.conn_country,
            &e.region,
            &e.city,
            &e.subscription,
        ];
        for (b, v) in self.strings.iter_mut().zip(values) {
            b.append_value(v);
        }
        self.ts.append_value(e.ts.timestamp_millis());
        self.ms_played.append_value(e.ms_played);
        self.duration.append_value(e.track_duration_ms);
        self.skipped.append_value(e.skipped);
        self.shuffle.append_value(e.shuffle);
        self.offline.append_value(e.offline);
        self.partition.append_value(partition);
        self.offset.append_value(offset);
        self.rows += 1;
        self.first_ts.get_or_insert(e.ts);
        self.min_ts = Some(self.min_ts.map_or(e.ts, |t| t.min(e.ts)));
        self.max_ts = Some(self.max_ts.map_or(e.ts, |t| t.max(e.ts)));
    }

    /// The batch so far; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let mut s = self
            .strings
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let mut next = || s.next().expect("16 string columns");
        let columns: Vec<ArrayRef> = vec![
            next(),
            Arc::new(self.ts.finish()),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            Arc::new(self.ms_played.finish()),
            Arc::new(self.duration.finish()),
            next(),
            next(),
            Arc::new(self.skipped.finish()),
            Arc::new(self.shuffle.finish()),
            Arc::new(self.offline.finish()),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
        ];
        self.rows = 0;
        self.first_ts = None;
        self.min_ts = None;
        self.max_ts = None;
        RecordBatch::try_new(schema(), columns).expect("columns match the schema")
    }
}

/// One Parquet file, zstd-compressed, in memory.
pub fn to_parquet(batch: &RecordBatch) -> anyhow::Result<Bytes> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .build();
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(Bytes::from(out))
}
