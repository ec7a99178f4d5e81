//! The simulator: seeded play events produced to Kafka at a chosen rate.

pub mod catalog;
pub mod generator;
pub mod geography;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator::{ParamError, Task, TaskConfig, TaskContext};
use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use generator::{Generator, WorldConfig};

use crate::kafka::KafkaConfig;

/// Params of the `simulate` task kind and of `setlist simulate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simulate {
    /// The broker and topic; fields left out come from Setlist's `kafka` settings.
    #[serde(default = "KafkaConfig::unset")]
    pub kafka: KafkaConfig,
    /// Partitions of the topic when it has to be created.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Events per second; absent: as fast as the broker takes them.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Stop after this many events; absent: until stopped.
    #[serde(default)]
    pub count: Option<u64>,
    /// Seeds the world, so runs with the same seed produce the same events.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// About how many simulated listeners play, spread over the countries.
    #[serde(default = "default_listeners")]
    pub listeners: usize,
    /// How many artists the catalog has, which sets how many tracks there are.
    #[serde(default = "default_artists")]
    pub artists: usize,
    /// The first event's time; absent: now.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// Events per second of event time, when it should differ from `rate`: with no
    /// `rate` and a low `history_rate`, weeks of history are produced in minutes.
    /// Absent: `rate`, else 10,000.
    #[serde(default)]
    pub history_rate: Option<f64>,
}

fn default_partitions() -> i32 {
    6
}
fn default_seed() -> u64 {
    42
}
fn default_listeners() -> usize {
    50_000
}
fn default_artists() -> usize {
    2_000
}

impl Default for Simulate {
    /// What a DAG file gets when it writes no params: continuous, as fast as possible.
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

impl Simulate {
    /// The simulated world this config describes. Without a rate or a history
    /// rate, events are stamped 10,000 to the simulated second.
    pub fn world(&self) -> WorldConfig {
        WorldConfig {
            seed: self.seed,
            artists: self.artists,
            listeners: self.listeners,
            start: self.start.unwrap_or_else(Utc::now),
            events_per_second: self.history_rate.or(self.rate).unwrap_or(10_000.0),
            ..WorldConfig::default()
        }
    }
}

impl TaskConfig for Simulate {
    fn validate(&self) -> Result<(), ParamError> {
        for (field, rate) in [("rate", self.rate), ("history_rate", self.history_rate)] {
            if let Some(rate) = rate
                && !(rate > 0.0 && rate.is_finite())
            {
                return Err(ParamError::at(
                    field,
                    "must be a positive number of events per second",
                ));
            }
        }
        if self.partitions < 1 {
            return Err(ParamError::at("partitions", "must be at least 1"));
        }
        if self.listeners == 0 || self.artists == 0 {
            return Err(ParamError::at(
                "listeners",
                "listeners and artists must be at least 1",
            ));
        }
        Ok(())
    }
}

/// How the simulator produces: idempotent, acks from all replicas, lz4, batched;
/// librdkafka retries a down broker for ten minutes before a delivery fails.
/// Batches linger up to 100 ms: at a steady few thousand events per second that
/// makes batches of hundreds, not a handful. Every batch is an object in tansu's
/// store, which lists a partition's objects on every fetch, so small batches make a
/// long topic slower and slower to read.
pub const PRODUCER_SETTINGS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("compression.type", "lz4"),
    ("linger.ms", "100"),
    ("batch.size", "1000000"),
    ("queue.buffering.max.messages", "500000"),
    ("queue.buffering.max.kbytes", "1048576"),
    ("message.timeout.ms", "600000"),
];

/// What a simulation produced.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SimulateStats {
    /// Events handed to the producer.
    pub produced: u64,
    /// Events the broker confirmed; `produced - delivered - failed` are still in flight.
    pub delivered: u64,
    /// Events the broker never took, which are lost.
    pub failed: u64,
    /// The first delivery error, so a failing broker is named without flooding the log.
    pub first_error: Option<String>,
}

#[derive(Default)]
struct Counting {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().expect("not poisoned");
                if first.is_none() {
                    tracing::error!(error = %e, "Kafka delivery failed; the event is lost unless retried.");
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

/// Produces events until `count` or `shutdown`, then flushes. `report` is called
/// about every `report_every` with the running totals.
pub async fn produce(
    config: &Simulate,
    shutdown: CancellationToken,
    report_every: Duration,
    report: impl Fn(&SimulateStats, f64) + Send + 'static,
) -> anyhow::Result<SimulateStats> {
    config.kafka.ensure_topic(config.partitions).await?;
    let producer: ThreadedProducer<Counting> = config
        .kafka
        .client(PRODUCER_SETTINGS)
        .create_with_context(Counting::default())
        .context("Failed to create the Kafka producer")?;
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let mut generator = Generator::new(&config.world());
        let mut payload = Vec::with_capacity(1024);
        let started = Instant::now();
        let mut last_report = Instant::now();
        let mut produced: u64 = 0;
        loop {
            if shutdown.is_cancelled() || config.count.is_some_and(|c| produced >= c) {
                break;
            }
            if let Some(rate) = config.rate
                && produced as f64 >= started.elapsed().as_secs_f64() * rate
            {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let event = generator.next_event();
            payload.clear();
            serde_json::to_writer(&mut payload, &event).expect("an event always serialises");
            let mut record = BaseRecord::to(&config.kafka.topic)
                .key(event.user_id.as_bytes())
                .payload(&payload);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => {
                        return Err(anyhow::anyhow!("Failed to queue an event for Kafka: {e}"));
                    }
                }
            }
            produced += 1;
            if last_report.elapsed() >= report_every {
                last_report = Instant::now();
                report(
                    &stats(&producer, produced),
                    produced as f64 / started.elapsed().as_secs_f64(),
                );
            }
        }
        // Wait for every queued event's delivery report.
        producer
            .flush(Duration::from_secs(120))
            .context("Kafka did not confirm every event within 120 s of shutdown")?;
        Ok(stats(&producer, produced))
    })
    .await?
}

fn stats(producer: &ThreadedProducer<Counting>, produced: u64) -> SimulateStats {
    let ctx = producer.context();
    SimulateStats {
        produced,
        delivered: ctx.delivered.load(Ordering::Relaxed),
        failed: ctx.failed.load(Ordering::Relaxed),
        first_error: ctx.first_error.lock().expect("not poisoned").clone(),
    }
}

#[async_trait]
impl Task for Simulate {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<serde_json::Value> {
        let log = ctx.log.clone();
        let config = Simulate {
            kafka: self.kafka.or(&crate::settings::Settings::of(ctx).kafka),
            ..self.clone()
        };
        let stats = produce(
            &config,
            ctx.cancel.clone(),
            Duration::from_secs(5),
            move |s, rate| {
                log.info(format!(
                    "Produced {} events ({rate:.0}/s), {} delivered, {} failed.",
                    s.produced, s.delivered, s.failed
                ));
            },
        )
        .await?;
        if stats.failed > 0 {
            anyhow::bail!(
                "{} of {} events were not delivered: {}",
                stats.failed,
                stats.produced,
                stats.first_error.unwrap_or_default()
            );
        }
        Ok(serde_json::to_value(stats)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: serde_json::Value) -> Simulate {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rates_must_be_positive_and_history_rate_sets_the_event_clock() {
        for field in ["rate", "history_rate"] {
            for bad in [0.0, -1.0] {
                let err = params(serde_json::json!({ field: bad }))
                    .validate()
                    .unwrap_err();
                assert_eq!(err.path, [field], "{err:?}");
            }
        }
        let paced = params(serde_json::json!({"rate": 500.0}));
        assert_eq!(paced.world().events_per_second, 500.0);
        let history = params(serde_json::json!({"history_rate": 4.0}));
        assert!(history.validate().is_ok());
        assert_eq!(history.world().events_per_second, 4.0);
        assert_eq!(Simulate::default().world().events_per_second, 10_000.0);
    }
}
