//! Streaming throughput: generator, simulator -> tansu, tansu -> lander -> Parquet.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use rdkafka::error::KafkaError;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use sqlx::PgPool;
use tasks::kafka::KafkaConfig;
use tasks::land::{Land, LandStats, Lander};
use tasks::simulate::{
    Generator, PRODUCER_SETTINGS, Simulate, WorldConfig, produce as simulate_produce,
};
use tokio_util::sync::CancellationToken;

use crate::Args;
use crate::engine::{Reaped, fresh_db, proc_stats, spawn_setlist};

fn brokers() -> String {
    std::env::var("SETLIST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

pub fn kafka(topic: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers(),
        topic: topic.to_string(),
        properties: BTreeMap::new(),
    }
}

pub fn generator() {
    let mut g = Generator::new(&WorldConfig {
        start: Utc::now(),
        ..WorldConfig::default()
    });
    let n = 5_000_000u64;
    let started = Instant::now();
    let mut sum = 0i64;
    for _ in 0..n {
        sum += black_box(g.next_event()).ms_played;
    }
    let plain = n as f64 / started.elapsed().as_secs_f64();
    black_box(sum);
    let mut buf = Vec::with_capacity(1024);
    let mut bytes = 0usize;
    let started = Instant::now();
    for _ in 0..n {
        buf.clear();
        serde_json::to_writer(&mut buf, &g.next_event()).unwrap();
        bytes += buf.len();
    }
    let json = n as f64 / started.elapsed().as_secs_f64();
    println!("| generator alone, 1 core ({n} events) | {plain:.0} events/s | >= 1,000,000 |");
    println!(
        "| generator + JSON serialisation, 1 core (mean {} bytes) | {json:.0} events/s | - |",
        bytes / n as usize
    );
}

pub fn simulate(topic: &str, count: u64) -> Simulate {
    Simulate {
        kafka: kafka(topic),
        partitions: 6,
        rate: None,
        count: Some(count),
        seed: 1,
        listeners: 50_000,
        artists: 2_000,
        start: Some(Utc::now()),
        history_rate: None,
    }
}

pub async fn produce(_args: &Args) -> anyhow::Result<()> {
    let n = 2_000_000;
    let topic = format!("bench-produce-{}", std::process::id());
    let config = simulate(&topic, n);
    config.kafka.ensure_topic(6).await?;
    let started = Instant::now();
    let stats = simulate_produce(
        &config,
        CancellationToken::new(),
        Duration::from_secs(3600),
        |_, _| {},
    )
    .await?;
    let rate = stats.delivered as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(stats.failed == 0, "{} deliveries failed", stats.failed);

    // The same message size, sent by the leanest producer loop: the broker's ceiling.
    let mut g = Generator::new(&config.world());
    let payload = serde_json::to_vec(&g.next_event())?;
    let ceiling_topic = format!("bench-ceiling-{}", std::process::id());
    kafka(&ceiling_topic).ensure_topic(6).await?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        kafka(&ceiling_topic).client(PRODUCER_SETTINGS).create()?;
    let started = Instant::now();
    for i in 0..n {
        let key = (i % 50_000).to_string();
        let mut record = BaseRecord::to(&ceiling_topic).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => anyhow::bail!("{e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(300))?;
    let ceiling = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "| simulator -> tansu, {n} events, idempotent, acks=all, lz4, {} B/event | {rate:.0} events/s | >= 300,000 |",
        payload.len()
    );
    println!(
        "| minimal rdkafka producer loop, same message, same settings (broker ceiling) | {ceiling:.0} events/s | - |"
    );
    Ok(())
}

/// Produces `n` events to a fresh topic and lands them all with `store_options` at
/// `store_url`; returns the lander's totals and the landing's seconds.
pub async fn produce_and_land(
    pool: &PgPool,
    topic: &str,
    store_url: &str,
    store_options: Vec<(String, String)>,
    n: u64,
) -> anyhow::Result<(LandStats, f64)> {
    produce_and_land_with(pool, simulate(topic, n), store_url, store_options).await
}

/// Produces what `sim` describes, then lands the topic until all of it is written
/// (on top of what earlier calls landed).
pub async fn produce_and_land_with(
    pool: &PgPool,
    sim: Simulate,
    store_url: &str,
    store_options: Vec<(String, String)>,
) -> anyhow::Result<(LandStats, f64)> {
    let topic = sim.kafka.topic.as_str();
    let before: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(rows), 0)::bigint FROM setlist.raw_objects WHERE topic = $1 AND state = 'written'",
    )
    .bind(topic)
    .fetch_one(pool)
    .await?;
    let n = before as u64 + sim.count.unwrap_or_default();
    let produced = simulate_produce(
        &sim,
        CancellationToken::new(),
        Duration::from_secs(3600),
        |_, _| {},
    )
    .await?;
    anyhow::ensure!(
        produced.failed == 0,
        "{} deliveries failed",
        produced.failed
    );
    let config = Land {
        kafka: kafka(topic),
        group_id: topic.to_string(),
        store_options,
        // The tail of each partition waits for max_age; keep it short so the
        // measure is throughput, not the age limit.
        max_age: Duration::from_millis(500),
        ..Land::new(store_url)
    };
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let lander = tokio::spawn(Lander::new(config, pool.clone())?.run(shutdown.clone()));
    loop {
        let landed: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(rows), 0)::bigint FROM setlist.raw_objects WHERE topic = $1 AND state = 'written'",
        )
        .bind(topic)
        .fetch_one(pool)
        .await?;
        if landed as u64 >= n {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "landing took over 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    shutdown.cancel();
    Ok((lander.await??, elapsed))
}

async fn land_once(
    args: &Args,
    store_url: &str,
    options: Vec<(String, String)>,
    n: u64,
    label: &str,
) -> anyhow::Result<()> {
    let (pool, _) = fresh_db(&args.admin_url).await?;
    let topic = format!(
        "bench-land-{}-{}",
        label.replace(' ', "-"),
        std::process::id()
    );
    let (stats, elapsed) = produce_and_land(&pool, &topic, store_url, options, n).await?;
    println!(
        "| tansu -> lander -> Parquet ({label}), {n} events in {} objects | {:.0} events/s | >= 200,000 |",
        stats.objects,
        n as f64 / elapsed
    );
    Ok(())
}

pub async fn land(args: &Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("setlist-bench-lake-{}", std::process::id()));
    land_once(
        args,
        &dir.display().to_string(),
        Vec::new(),
        2_000_000,
        "local folder",
    )
    .await?;
    std::fs::remove_dir_all(&dir).ok();
    let options = [
        ("endpoint", "http://127.0.0.1:18333"),
        ("access_key_id", "setlist"),
        ("secret_access_key", "setlist-secret"),
        ("allow_http", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    land_once(
        args,
        &format!("s3://setlist/bench-{}", std::process::id()),
        options,
        1_000_000,
        "SeaweedFS S3",
    )
    .await
}

pub async fn land_rss(args: &Args) -> anyhow::Result<()> {
    let (_pool, url) = fresh_db(&args.admin_url).await?;
    let topic = format!("bench-rss-{}", std::process::id());
    kafka(&topic).ensure_topic(6).await?;
    let dir = std::env::temp_dir().join(format!("setlist-bench-rss-{}", std::process::id()));
    let child = spawn_setlist(
        args,
        &url,
        &dir,
        &[
            "land",
            "--topic",
            &topic,
            "--store-url",
            &dir.display().to_string(),
        ],
    )
    .context("start the lander")?;
    let pid = child.id();
    let _guard = Reaped(vec![child]);
    let seconds = 30.0;
    let mut config = simulate(&topic, (100_000.0 * seconds) as u64);
    config.rate = Some(100_000.0);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut max = 0u64;
            while !done.load(Ordering::Relaxed) {
                if let Ok((rss, _)) = proc_stats(pid) {
                    max = max.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            max
        })
    };
    let started = Instant::now();
    let stats = simulate_produce(
        &config,
        CancellationToken::new(),
        Duration::from_secs(3600),
        |_, _| {},
    )
    .await?;
    let achieved = stats.delivered as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(6)).await;
    done.store(true, Ordering::Relaxed);
    let max = sampler.await?;
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "| lander process RSS while events arrive at {achieved:.0}/s for {seconds:.0} s | max {:.1} MB | < 200 MB |",
        max as f64 / 1024.0
    );
    Ok(())
}
