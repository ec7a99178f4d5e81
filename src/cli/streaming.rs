//! `setlist simulate` and `setlist land`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use tasks::kafka::KafkaConfig;
use tasks::land::{Land, Lander};
use tasks::simulate::{Simulate, produce};

use setlist::config::Flags;

use super::{Ctx, parse_duration, time_arg};

/// Where the broker is, shared by both commands (default: the `kafka` settings).
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (kafka.brokers, SETLIST_KAFKA_BROKERS).
    #[arg(long)]
    brokers: Option<String>,
    /// The topic of play events (kafka.topic, SETLIST_KAFKA_TOPIC).
    #[arg(long)]
    topic: Option<String>,
    /// Any librdkafka property, repeatable: -X linger.ms=10
    #[arg(short = 'X', value_parser = parse_property)]
    property: Vec<(String, String)>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("\"{s}\" is not key=value"))
}

impl KafkaArgs {
    /// The flags given, at their settings' keys.
    pub fn flags(&self, flags: Flags) -> Flags {
        flags
            .set("kafka.brokers", self.brokers.clone())
            .set("kafka.topic", self.topic.clone())
    }

    /// The configured broker and topic with the -X properties on top.
    fn config(&self, ctx: &Ctx) -> KafkaConfig {
        let mut kafka = ctx.config().kafka.clone();
        kafka
            .properties
            .extend(self.property.iter().cloned().collect::<BTreeMap<_, _>>());
        kafka
    }
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Events per second; without it, as fast as the broker takes them (burst).
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many events; without it, run until Ctrl-C.
    #[arg(long)]
    count: Option<u64>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Partitions of the topic if it has to be created.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    #[arg(long, default_value_t = 50_000)]
    listeners: usize,
    #[arg(long, default_value_t = 2_000)]
    artists: usize,
    /// The first event's time (default: now).
    #[arg(long, value_parser = time_arg::parse)]
    start: Option<DateTime<Utc>>,
    /// Events per second of event time (default: --rate, else 10,000): with a low
    /// value and no --rate, weeks of history are produced in minutes.
    #[arg(long)]
    history_rate: Option<f64>,
}

#[derive(Debug, Args)]
pub struct LandArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Where objects go: a folder, file:///dir, or s3://bucket[/prefix] (AWS_*
    /// variables); default: store.url, SETLIST_STORE_URL.
    #[arg(long)]
    store_url: Option<String>,
    #[arg(long, default_value = "setlist-lander")]
    group_id: String,
    /// Write a batch at this many events...
    #[arg(long, default_value_t = 100_000)]
    max_rows: usize,
    /// ...or when its first event has waited this long (default: land.max_age, 5s).
    #[arg(long, value_parser = parse_duration)]
    max_age: Option<Duration>,
    /// Only these partitions (comma-separated), to split a topic between landers.
    #[arg(long, value_delimiter = ',')]
    partitions: Vec<i32>,
}

impl SimulateArgs {
    /// The flags given, at their settings' keys.
    pub fn flags(&self, flags: Flags) -> Flags {
        self.kafka.flags(flags)
    }
}

impl LandArgs {
    /// The flags given, at their settings' keys.
    pub fn flags(&self, flags: Flags) -> Flags {
        self.kafka
            .flags(flags)
            .set("store.url", self.store_url.clone())
            .set("land.max_age", super::services::duration(self.max_age))
    }
}

pub async fn simulate(ctx: &Ctx, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let config = Simulate {
        kafka: args.kafka.config(ctx),
        partitions: args.partitions,
        rate: args.rate,
        count: args.count,
        seed: args.seed,
        listeners: args.listeners,
        artists: args.artists,
        start: args.start,
        history_rate: args.history_rate,
    };
    orchestrator::TaskConfig::validate(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let shutdown = setlist::shutdown_on_signal();
    let stats = produce(&config, shutdown, Duration::from_secs(5), |s, rate| {
        eprintln!(
            "produced {} events ({rate:.0}/s), {} delivered, {} failed",
            s.produced, s.delivered, s.failed
        );
    })
    .await?;
    println!(
        "Produced {} events to {}: {} delivered, {} failed.",
        stats.produced, config.kafka.topic, stats.delivered, stats.failed
    );
    if stats.failed > 0 {
        eprintln!(
            "error: first delivery error: {}",
            stats.first_error.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn land(ctx: &Ctx, args: LandArgs) -> anyhow::Result<ExitCode> {
    let app = ctx.app(4).await?;
    let config = Land {
        kafka: args.kafka.config(ctx),
        group_id: args.group_id,
        max_rows: args.max_rows,
        partitions: args.partitions,
        ..app.lander_config()?
    };
    let stats = Lander::new(config, app.pool.clone())?
        .run(setlist::shutdown_on_signal())
        .await?;
    println!(
        "Landed {} events in {} objects; {} dead-lettered.",
        stats.events, stats.objects, stats.dead_letters
    );
    Ok(ExitCode::SUCCESS)
}
