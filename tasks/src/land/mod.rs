//! The lander: a Kafka consumer that batches play events per partition and writes
//! each batch as one Parquet object (plus a dead-letter object for messages that
//! fail to parse), exactly once.
//!
//! Exactly once, by construction rather than by luck:
//! 1. A batch is announced in the ledger (`setlist.raw_objects`, state `writing`)
//!    before its object is put; the announcement only succeeds when the batch starts
//!    right after the partition's last object, so two landers can never both land
//!    one offset.
//! 2. The object key carries topic, partition and offset range, so a redo overwrites.
//! 3. After a crash the lander reads the ledger: offsets below the last object are
//!    skipped, and a `writing` batch is rebuilt with exactly the same offsets and key.
//! 4. The lander assigns itself the topic's partitions (all, or `partitions`) at the
//!    ledger's positions rather than trusting the group coordinator's: tansu neither
//!    expires a SIGKILLed member nor always returns the committed position, and the
//!    ledger is the truth anyway. Offsets are still committed to `group_id` after
//!    each object is durable, for lag tools. Several landers split the partitions
//!    with `partitions`; should two claim one, the ledger lets only one land each range.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use object_store::ObjectStoreExt;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::kafka::KafkaConfig;
use crate::play::PlayEvent;
use crate::raw::ledger::{self, Entry, Resume};
use crate::raw::parquet::{BatchBuilder, to_parquet};
use crate::raw::{batch_name, dead_letter_key, object_key};
use crate::storage::Storage;

/// Settings of `setlist land`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Land {
    /// The broker and topic to consume play events from.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// The consumer group offsets are committed to once an object is durable, for lag tools.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// `file:///dir`, a folder, or `s3://bucket[/prefix]`.
    pub store_url: String,
    /// Where under the store the Parquet objects go; also the dataset name their DAGs watch.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Where under the store the objects of unparseable messages go.
    #[serde(default = "default_dead_letter_prefix")]
    pub dead_letter_prefix: String,
    /// A batch is written at this many events...
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// ...or when all open batches together hold this many message bytes (the
    /// largest is written), which bounds the lander's memory...
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// ...or when its first event has waited this long.
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    /// Partitions this lander owns; empty: all of the topic's.
    #[serde(default)]
    pub partitions: Vec<i32>,
    /// S3 settings passed to object_store instead of the environment.
    #[serde(default)]
    pub store_options: Vec<(String, String)>,
}

fn default_group() -> String {
    "setlist-lander".into()
}
fn default_prefix() -> String {
    "raw/plays".into()
}
fn default_dead_letter_prefix() -> String {
    "dead_letter/plays".into()
}
fn default_max_rows() -> usize {
    100_000
}
fn default_max_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_max_age() -> Duration {
    Duration::from_secs(5)
}

impl Land {
    /// Settings that land into `store_url` with every other field at its default.
    pub fn new(store_url: impl Into<String>) -> Self {
        Self {
            kafka: KafkaConfig::default(),
            group_id: default_group(),
            store_url: store_url.into(),
            prefix: default_prefix(),
            dead_letter_prefix: default_dead_letter_prefix(),
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
            store_options: Vec::new(),
            partitions: Vec::new(),
        }
    }
}

/// Running totals of a lander.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LandStats {
    /// Events written to Parquet objects.
    pub events: u64,
    /// Messages that went to dead-letter objects instead.
    pub dead_letters: u64,
    /// Batches written, each as a Parquet object, a dead-letter object or both.
    pub objects: u64,
    /// Messages skipped because an earlier object already holds them.
    pub skipped: u64,
}

/// A message that failed to parse or validate, as stored under the dead-letter prefix.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeadLetter {
    /// The topic the message came from, so it can be found again.
    pub topic: String,
    /// The partition the message came from.
    pub partition: i32,
    /// The message's offset, so it can be replayed or inspected.
    pub offset: i64,
    /// Why it was rejected, for whoever looks into the dead letters.
    pub reason: String,
    /// The message key and payload, base64.
    pub key_base64: Option<String>,
    /// The payload as base64, so bytes that are not UTF-8 survive intact.
    pub payload_base64: String,
}

#[derive(Default)]
struct LanderContext {
    lag: AtomicI64,
    /// Each partition's high watermark, from librdkafka's statistics.
    high: std::sync::Mutex<HashMap<i32, i64>>,
}

impl ClientContext for LanderContext {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.lag.store(lag, Ordering::Relaxed);
        let mut high = self.high.lock().expect("not poisoned");
        for topic in statistics.topics.values() {
            for p in topic.partitions.values().filter(|p| p.partition >= 0) {
                high.insert(p.partition, p.hi_offset);
            }
        }
    }
}

impl ConsumerContext for LanderContext {}

/// One partition's open batch and its place in the ledger.
struct PartitionState {
    resume: Resume,
    builder: BatchBuilder,
    dead: Vec<DeadLetter>,
    first: Option<i64>,
    last: i64,
    bytes: usize,
    opened: Instant,
    /// How far before the expected offset the last seek went (see `rewind`).
    rewind: Option<i64>,
    last_seen: Instant,
}

impl PartitionState {
    fn new(resume: Resume) -> Self {
        Self {
            rewind: None,
            last_seen: Instant::now(),
            resume,
            builder: BatchBuilder::default(),
            dead: Vec::new(),
            first: None,
            last: -1,
            bytes: 0,
            opened: Instant::now(),
        }
    }
}

/// Consumes the topic and lands its events as objects, exactly once; run by `setlist land`.
pub struct Lander {
    config: Land,
    pool: PgPool,
    storage: Storage,
    consumer: StreamConsumer<LanderContext>,
    partitions: HashMap<i32, PartitionState>,
    /// Message bytes in all open batches.
    buffered: usize,
    /// Its running totals, for reports while it runs.
    pub stats: LandStats,
}

impl Lander {
    /// A lander with `config` over the state store `pool`; nothing is consumed until `run`.
    pub fn new(config: Land, pool: PgPool) -> anyhow::Result<Self> {
        let options: Vec<(&str, &str)> = config
            .store_options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let storage = Storage::open_with(&config.store_url, &options)?;
        let consumer: StreamConsumer<LanderContext> = config
            .kafka
            .client(&[
                ("group.id", &config.group_id),
                ("enable.auto.commit", "false"),
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                ("session.timeout.ms", "10000"),
                ("statistics.interval.ms", "1000"),
                // Fetch again soon: tansu holds a fetch for its whole wait even when
                // data is there, and librdkafka backs off a full second by default.
                ("fetch.wait.max.ms", "10"),
                ("fetch.queue.backoff.ms", "5"),
                // Prefetch limits are per partition: keep them small, memory is the budget.
                ("queued.max.messages.kbytes", "4096"),
                ("queued.min.messages", "10000"),
            ])
            .create_with_context(LanderContext::default())
            .context("Failed to create the Kafka consumer")?;
        Ok(Self {
            config,
            pool,
            storage,
            consumer,
            partitions: HashMap::new(),
            buffered: 0,
            stats: LandStats::default(),
        })
    }

    /// This lander's partitions of the topic as the broker knows them now: none while
    /// the topic does not exist, an error when it exists without any of them.
    fn partition_ids(&self) -> anyhow::Result<Vec<i32>> {
        let topic = &self.config.kafka.topic;
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .with_context(|| format!("cannot read the metadata of topic {topic} from {} (scripts/kafka.sh starts a broker)", self.config.kafka.brokers))?;
        let all: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut ids: Vec<i32> = all
            .iter()
            .copied()
            .filter(|p| self.config.partitions.is_empty() || self.config.partitions.contains(p))
            .collect();
        ids.sort_unstable();
        anyhow::ensure!(
            all.is_empty() || !ids.is_empty(),
            "topic {topic} has none of the partitions this lander was given ({:?}); it has {:?}",
            self.config.partitions,
            all
        );
        Ok(ids)
    }

    /// Waits until the topic has partitions for this lander (a lander may start before
    /// the producer that creates the topic), saying so now and then; `None` when
    /// `shutdown` came first.
    async fn wait_for_partitions(
        &self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Vec<i32>>> {
        let topic = &self.config.kafka.topic;
        let since = Instant::now();
        let mut said = None::<Instant>;
        loop {
            let ids = self.partition_ids()?;
            if !ids.is_empty() {
                return Ok(Some(ids));
            }
            if said.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                tracing::info!(
                    topic = %topic,
                    waited_s = since.elapsed().as_secs(),
                    "Waiting for the topic to exist (a producer creates it)."
                );
                said = Some(Instant::now());
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Assigns partitions `ids` of the topic, each at the ledger's position.
    async fn assign(&mut self, ids: Vec<i32>) -> anyhow::Result<()> {
        let topic = self.config.kafka.topic.clone();
        let mut list = TopicPartitionList::new();
        for p in &ids {
            let resume = ledger::resume(&self.pool, &topic, *p).await?;
            let start = resume.next.map_or(Offset::Beginning, Offset::Offset);
            list.add_partition_offset(&topic, *p, start)?;
            self.partitions.insert(*p, PartitionState::new(resume));
        }
        self.consumer
            .assign(&list)
            .context("Failed to assign the partitions")?;
        tracing::info!(topic = %topic, partitions = ?ids, "Assigned partitions at the ledger's positions.");
        Ok(())
    }

    /// Consumes until `shutdown`, then writes the open batches.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<LandStats> {
        let Some(ids) = self.wait_for_partitions(&shutdown).await? else {
            return Ok(self.stats);
        };
        self.assign(ids).await?;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last_report = (Instant::now(), 0u64);
        tracing::info!(topic = %self.config.kafka.topic, store = %self.storage.url, "Lander started.");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                message = self.consumer.recv() => {
                    let message = message.context("Kafka consumer error")?;
                    let partition = message.partition();
                    let offset = message.offset();
                    let payload = message.payload().unwrap_or_default().to_vec();
                    let key = message.key().map(|k| k.to_vec());
                    drop(message);
                    self.take(partition, offset, key, &payload).await?;
                }
                _ = tick.tick() => {
                    for (p, next) in self.stuck_partitions() {
                        self.rewind(p, next)?;
                    }
                    let aged: Vec<i32> = self
                        .partitions
                        .iter()
                        .filter(|(_, s)| s.first.is_some() && s.resume.pending.is_none() && s.opened.elapsed() >= self.config.max_age)
                        .map(|(p, _)| *p)
                        .collect();
                    for p in aged {
                        self.flush(p).await?;
                    }
                    if last_report.0.elapsed() >= Duration::from_secs(10) {
                        let rate = (self.stats.events - last_report.1) as f64 / last_report.0.elapsed().as_secs_f64();
                        tracing::info!(
                            events = self.stats.events, rate = format!("{rate:.0}/s"), dead_letters = self.stats.dead_letters,
                            objects = self.stats.objects, lag = self.consumer.context().lag.load(Ordering::Relaxed),
                            "Landing."
                        );
                        last_report = (Instant::now(), self.stats.events);
                    }
                }
            }
        }
        let open: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(_, s)| s.first.is_some())
            .map(|(p, _)| *p)
            .collect();
        for p in open {
            self.flush(p).await?;
        }
        tracing::info!(
            events = self.stats.events,
            objects = self.stats.objects,
            "Lander stopped."
        );
        Ok(self.stats)
    }

    async fn take(
        &mut self,
        partition: i32,
        offset: i64,
        key: Option<Vec<u8>>,
        payload: &[u8],
    ) -> anyhow::Result<()> {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return Ok(());
        };
        state.last_seen = Instant::now();
        // Where this partition continues: after the open batch, else the ledger's next.
        let expected = if state.first.is_some() {
            Some(state.last + 1)
        } else {
            state.resume.next
        };
        if let Some(expected) = expected {
            if offset <= expected {
                state.rewind = None;
            }
            if offset < expected {
                self.stats.skipped += 1;
                return Ok(());
            }
            if offset > expected {
                if state.rewind == Some(0) {
                    tracing::error!(
                        partition,
                        from = expected,
                        to = offset - 1,
                        "Offsets are gone from Kafka before they were landed; they are lost."
                    );
                    state.rewind = None;
                } else {
                    return self.rewind(partition, expected);
                }
            }
        }
        // A redo batch ends exactly where the announced one did.
        if let Some((_, last)) = state.resume.pending
            && offset > last
            && state.first.is_some()
        {
            self.flush(partition).await?;
        }
        let state = self.partitions.get_mut(&partition).expect("present");
        if state.first.is_none() {
            state.first = Some(offset);
            state.opened = Instant::now();
        }
        state.last = offset;
        state.bytes += payload.len();
        match PlayEvent::parse(payload) {
            Ok(event) => state.builder.append(&event, partition, offset),
            Err(reason) => {
                let b64 = base64::engine::general_purpose::STANDARD;
                state.dead.push(DeadLetter {
                    topic: self.config.kafka.topic.clone(),
                    partition,
                    offset,
                    reason,
                    key_base64: key.map(|k| b64.encode(k)),
                    payload_base64: b64.encode(payload),
                });
            }
        }
        let full = state.builder.rows + state.dead.len() >= self.config.max_rows;
        let redo_done = state.resume.pending.is_some_and(|(_, last)| offset >= last);
        self.buffered += payload.len();
        if redo_done || (state.resume.pending.is_none() && full) {
            self.flush(partition).await?;
        }
        if self.buffered >= self.config.max_bytes {
            // Over the memory budget: write the largest open batch.
            let largest = self
                .partitions
                .iter()
                .filter(|(_, s)| s.first.is_some() && s.resume.pending.is_none())
                .max_by_key(|(_, s)| s.bytes)
                .map(|(p, _)| *p);
            if let Some(p) = largest {
                self.flush(p).await?;
            }
        }
        Ok(())
    }

    /// Seeks a partition further back than `expected`: 1024, 4096, ... offsets, then
    /// the beginning. A broker may answer a fetch from the middle of a producer's
    /// batch with the next batch, or with nothing when there is none (tansu does);
    /// reading from earlier and skipping up to `expected` always works.
    fn rewind(&mut self, partition: i32, expected: i64) -> anyhow::Result<()> {
        let state = self
            .partitions
            .get_mut(&partition)
            .expect("a known partition");
        let step = state.rewind.map_or(1024, |r| r * 4);
        let (to, rewind) = if expected - step > 0 {
            (Offset::Offset(expected - step), step)
        } else {
            (Offset::Beginning, 0)
        };
        state.rewind = Some(rewind);
        state.last_seen = Instant::now();
        tracing::debug!(
            partition,
            expected,
            ?to,
            "Rewinding to find the expected offset."
        );
        self.consumer
            .seek(
                &self.config.kafka.topic,
                partition,
                to,
                Duration::from_secs(10),
            )
            .with_context(|| format!("Failed to seek partition {partition}"))
    }

    /// Partitions that have been silent though the broker holds offsets past the
    /// ledger's position: the fetch landed inside a batch the broker will not return.
    fn stuck_partitions(&self) -> Vec<(i32, i64)> {
        let high = self
            .consumer
            .context()
            .high
            .lock()
            .expect("not poisoned")
            .clone();
        self.partitions
            .iter()
            .filter_map(|(p, s)| {
                let next = s.resume.next?;
                let silent = s.first.is_none()
                    && s.last_seen.elapsed() >= Duration::from_secs(2)
                    && s.rewind != Some(0);
                (silent && high.get(p).is_some_and(|&h| h > next)).then_some((*p, next))
            })
            .collect()
    }

    /// Writes one partition's open batch: announce, put, mark written, commit.
    async fn flush(&mut self, partition: i32) -> anyhow::Result<()> {
        let Some(sealed) = self.seal(partition)? else {
            return Ok(());
        };
        if !self.announce(&sealed).await? {
            return Ok(());
        }
        self.put(&sealed).await?;
        self.written(sealed).await
    }

    /// Closes one partition's open batch and encodes it; `None` when it is empty.
    fn seal(&mut self, partition: i32) -> anyhow::Result<Option<Sealed>> {
        let topic = &self.config.kafka.topic;
        let state = self
            .partitions
            .get_mut(&partition)
            .expect("flush of a known partition");
        let Some(first) = state.first.take() else {
            return Ok(None);
        };
        let last = state.last;
        let (first_ts, min_ts, max_ts) = (
            state.builder.first_ts,
            state.builder.min_ts,
            state.builder.max_ts,
        );
        let rows = state.builder.rows;
        let batch = state.builder.finish();
        let dead = std::mem::take(&mut state.dead);
        self.buffered = self.buffered.saturating_sub(state.bytes);
        state.bytes = 0;
        let redo = state.resume.pending.take();
        let name = batch_name(topic, partition, first, last);
        let parquet = if rows > 0 {
            Some(to_parquet(&batch)?)
        } else {
            None
        };
        Ok(Some(Sealed {
            partition,
            first,
            last,
            rows,
            min_ts,
            max_ts,
            object_key: first_ts.map(|ts| object_key(&self.config.prefix, ts, &name)),
            dead_letter_key: (!dead.is_empty())
                .then(|| dead_letter_key(&self.config.dead_letter_prefix, &name)),
            parquet,
            dead,
            redo,
        }))
    }

    /// Records the batch in the ledger before its object exists (a redo of a batch
    /// the ledger already holds needs nothing). False when another lander landed
    /// these offsets first: the batch is dropped and the partition read again from
    /// the ledger's position.
    async fn announce(&mut self, b: &Sealed) -> anyhow::Result<bool> {
        let topic = self.config.kafka.topic.clone();
        let (partition, first, last) = (b.partition, b.first, b.last);
        match b.redo {
            Some(range) if range != (first, last) => {
                anyhow::bail!(
                    "partition {partition}: the redo of offsets {range:?} read {first}..{last}; the topic changed under it"
                );
            }
            Some(_) => return Ok(true),
            None => {}
        }
        let entry = Entry {
            topic: &topic,
            partition,
            first_offset: first,
            last_offset: last,
            object_key: b.object_key.clone(),
            dead_letter_key: b.dead_letter_key.clone(),
            rows: b.rows as i32,
            dead_letters: b.dead.len() as i32,
            bytes: b.parquet.as_ref().map_or(0, |p| p.len() as i64),
            min_ts: b.min_ts,
            max_ts: b.max_ts,
        };
        if ledger::announce(&self.pool, &entry).await? {
            return Ok(true);
        }
        tracing::warn!(
            partition,
            first,
            last,
            "Another lander landed these offsets first; dropping this batch."
        );
        let resume = ledger::resume(&self.pool, &topic, partition).await?;
        let start = resume.next.map_or(Offset::Beginning, Offset::Offset);
        self.partitions
            .insert(partition, PartitionState::new(resume));
        self.consumer
            .seek(&topic, partition, start, Duration::from_secs(10))
            .with_context(|| format!("Failed to seek partition {partition}"))?;
        Ok(false)
    }

    /// Puts the batch's object and its dead letters.
    async fn put(&self, b: &Sealed) -> anyhow::Result<()> {
        if let (Some(key), Some(bytes)) = (&b.object_key, &b.parquet) {
            self.storage
                .store
                .put(&self.storage.key(key), bytes.clone().into())
                .await
                .with_context(|| format!("Failed to write {key} to {}", self.storage.url))?;
        }
        if let Some(key) = &b.dead_letter_key {
            let mut body = Vec::new();
            for d in &b.dead {
                serde_json::to_writer(&mut body, d)?;
                body.push(b'\n');
            }
            self.storage
                .store
                .put(&self.storage.key(key), body.into())
                .await
                .with_context(|| format!("Failed to write {key} to {}", self.storage.url))?;
            tracing::warn!(partition = b.partition, count = b.dead.len(), key = %key, first_reason = %b.dead[0].reason, "Dead-lettered messages.");
        }
        Ok(())
    }

    /// Marks the batch written in the ledger, commits its offsets for lag tools and
    /// moves the partition on.
    async fn written(&mut self, b: Sealed) -> anyhow::Result<()> {
        let topic = &self.config.kafka.topic;
        let (partition, last) = (b.partition, b.last);
        ledger::written(
            &self.pool,
            topic,
            partition,
            b.first,
            b.object_key.as_deref(),
        )
        .await?;
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(topic, partition, Offset::Offset(last + 1))?;
        if let Err(e) = self.consumer.commit(&offsets, CommitMode::Async) {
            // The ledger already holds the position; a failed commit only means re-reading.
            tracing::warn!(partition, error = %e, "Offset commit failed; the ledger keeps the position.");
        }
        let state = self.partitions.get_mut(&partition).expect("present");
        state.resume = Resume {
            next: Some(last + 1),
            pending: None,
        };
        self.stats.events += b.rows as u64;
        self.stats.dead_letters += b.dead.len() as u64;
        self.stats.objects += 1;
        Ok(())
    }
}

/// One partition's batch, closed and encoded, on its way to the store.
struct Sealed {
    partition: i32,
    first: i64,
    last: i64,
    rows: usize,
    min_ts: Option<chrono::DateTime<chrono::Utc>>,
    max_ts: Option<chrono::DateTime<chrono::Utc>>,
    object_key: Option<String>,
    dead_letter_key: Option<String>,
    parquet: Option<bytes::Bytes>,
    dead: Vec<DeadLetter>,
    /// The offsets of a batch the ledger holds as `writing` (a crash's redo).
    redo: Option<(i64, i64)>,
}
