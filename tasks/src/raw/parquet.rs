//! The raw Parquet layout: the event's own fields, typed (as [`PLAY_FIELDS`] says),
//! the Kafka partition and offset each row came from, and the fields the event had
//! that this version does not know.

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

use crate::play::{FieldKind, FieldValue, PLAY_FIELDS, PlayEvent};

/// The column of each event's unknown fields (JSON text; null when there were none).
pub const EXTRAS: &str = "extras";

/// The Arrow type of a play field.
pub fn data_type(kind: FieldKind) -> DataType {
    match kind {
        FieldKind::Uuid | FieldKind::Str => DataType::Utf8,
        FieldKind::Ts => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        FieldKind::I64 => DataType::Int64,
        FieldKind::Bool => DataType::Boolean,
    }
}

/// The schema of every raw object: the play's fields in [`PLAY_FIELDS`] order, the
/// Kafka partition and offset, and the event's unknown fields.
pub fn schema() -> SchemaRef {
    let mut fields: Vec<Field> = PLAY_FIELDS
        .iter()
        .map(|(name, kind)| Field::new(*name, data_type(*kind), false))
        .collect();
    fields.push(Field::new("kafka_partition", DataType::Int32, false));
    fields.push(Field::new("kafka_offset", DataType::Int64, false));
    fields.push(Field::new(EXTRAS, DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// One column being built.
enum Column {
    Str(StringBuilder),
    Ts(TimestampMillisecondBuilder),
    I64(Int64Builder),
    Bool(BooleanBuilder),
}

impl Column {
    fn new(kind: FieldKind) -> Self {
        match kind {
            FieldKind::Uuid | FieldKind::Str => Column::Str(StringBuilder::new()),
            FieldKind::Ts => Column::Ts(TimestampMillisecondBuilder::new().with_timezone("UTC")),
            FieldKind::I64 => Column::I64(Int64Builder::new()),
            FieldKind::Bool => Column::Bool(BooleanBuilder::new()),
        }
    }

    fn push(&mut self, value: FieldValue<'_>) {
        match (self, value) {
            (Column::Str(b), FieldValue::Uuid(id)) => b.append_value(
                id.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            ),
            (Column::Str(b), FieldValue::Str(v)) => b.append_value(v),
            (Column::Ts(b), FieldValue::Ts(ms)) => b.append_value(ms),
            (Column::I64(b), FieldValue::I64(v)) => b.append_value(v),
            (Column::Bool(b), FieldValue::Bool(v)) => b.append_value(v),
            _ => unreachable!("a field's value has its field's kind"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Str(b) => Arc::new(b.finish()),
            Column::Ts(b) => Arc::new(b.finish()),
            Column::I64(b) => Arc::new(b.finish()),
            Column::Bool(b) => Arc::new(b.finish()),
        }
    }
}

/// Column builders for one batch.
pub struct BatchBuilder {
    fields: Vec<Column>,
    partition: Int32Builder,
    offset: Int64Builder,
    extras: StringBuilder,
    /// Events appended so far, to decide when the batch is full.
    pub rows: usize,
    /// The first event's time, which picks the object's `dt=`/`hr=` folder.
    pub first_ts: Option<DateTime<Utc>>,
    /// The earliest event time so far, for the ledger.
    pub min_ts: Option<DateTime<Utc>>,
    /// The latest event time so far, for the ledger.
    pub max_ts: Option<DateTime<Utc>>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self {
            fields: PLAY_FIELDS
                .iter()
                .map(|(_, kind)| Column::new(*kind))
                .collect(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            extras: StringBuilder::new(),
            rows: 0,
            first_ts: None,
            min_ts: None,
            max_ts: None,
        }
    }
}

impl BatchBuilder {
    /// Adds event `e`, read at `offset` of `partition`, as one row.
    pub fn append(&mut self, e: &PlayEvent<'_>, partition: i32, offset: i64) {
        for (column, value) in self.fields.iter_mut().zip(e.values()) {
            column.push(value);
        }
        self.partition.append_value(partition);
        self.offset.append_value(offset);
        self.extras.append_option(e.extras.as_deref());
        self.rows += 1;
        self.first_ts.get_or_insert(e.ts);
        self.min_ts = Some(self.min_ts.map_or(e.ts, |t| t.min(e.ts)));
        self.max_ts = Some(self.max_ts.map_or(e.ts, |t| t.max(e.ts)));
    }

    /// The batch so far; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = self.fields.iter_mut().map(Column::finish).collect();
        columns.push(Arc::new(self.partition.finish()));
        columns.push(Arc::new(self.offset.finish()));
        columns.push(Arc::new(self.extras.finish()));
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
