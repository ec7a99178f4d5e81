//! Freshness: events produced at a steady rate, through the broker, the lander,
//! load_bronze and dbt (run by `setlist standalone` with the shipped
//! spotify_pipeline DAG), until they count in gold.agg_region_hourly.
//!
//! The k-th event's freshness is the time from its production until gold counts k
//! plays. Events do not reach gold strictly in order (partitions land separately),
//! so this reads the pipeline as a queue: what it measures is how long the backlog
//! between production and gold is, in seconds.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tasks::simulate::{Simulate, produce};
use tokio_util::sync::CancellationToken;

use crate::Args;
use crate::engine::fresh_db;
use crate::streaming::simulate;

/// (seconds since the start, how many so far)
type Timeline = Vec<(f64, u64)>;

pub async fn freshness(args: &Args) -> anyhow::Result<()> {
    let rate = args.rate;
    let total = (rate * args.duration.as_secs_f64()) as u64;
    let (pool, url) = fresh_db(&args.admin_url).await?;
    let database = url.rsplit('/').next().unwrap_or_default().to_string();
    let pid = std::process::id();
    let topic = format!("bench-fresh-{pid}");
    let work = std::env::temp_dir().join(format!("setlist-bench-fresh-{pid}"));
    let dags = work.join("dags");
    std::fs::create_dir_all(&dags)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(
        root.join("dags/spotify_pipeline.toml"),
        dags.join("spotify_pipeline.toml"),
    )?;
    let dbt = crate::warehouse::dbt_binary();
    let sim = Simulate {
        rate: Some(rate),
        ..simulate(&topic, total)
    };
    sim.kafka.ensure_topic(sim.partitions).await?;
    let mut pipeline = tokio::process::Command::new(&args.setlist)
        .args(["standalone", "--land", "--land-max-age", "1s", "--topic"])
        .arg(&topic)
        .arg("--dags-dir")
        .arg(&dags)
        .env("DATABASE_URL", &url)
        .env("SETLIST_STORE_URL", work.join("lake"))
        .env("SETLIST_TOPIC", &topic)
        .env("SETLIST_DBT", &dbt)
        .env("SETLIST_DBT_PROJECT", root.join("dbt"))
        .env("SETLIST_WAREHOUSE_DB", &database)
        .env("SETLIST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {} (cargo build --release)", args.setlist.display()))?;

    let started = Instant::now();
    let produced: Arc<Mutex<Timeline>> = Arc::new(Mutex::new(vec![(0.0, 0)]));
    let producer = {
        let produced = produced.clone();
        tokio::spawn(async move {
            produce(
                &sim,
                CancellationToken::new(),
                Duration::from_millis(100),
                move |s, _| {
                    let t = started.elapsed().as_secs_f64();
                    produced.lock().unwrap().push((t, s.produced));
                },
            )
            .await
        })
    };
    let mut gold: Timeline = vec![(0.0, 0)];
    let limit = args.duration + Duration::from_secs(120);
    let mut last_report = Instant::now();
    loop {
        let in_gold: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(plays), 0)::bigint FROM gold.agg_region_hourly",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        gold.push((started.elapsed().as_secs_f64(), in_gold as u64));
        if in_gold as u64 >= total {
            break;
        }
        if let Some(status) = pipeline.try_wait()? {
            anyhow::bail!("setlist standalone stopped: {status}");
        }
        if started.elapsed() > limit {
            eprintln!(
                "[freshness] only {in_gold} of {total} plays reached gold within {limit:?}; \
                 the latencies below are of those"
            );
            break;
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            let made = produced.lock().unwrap().last().map_or(0, |p| p.1);
            eprintln!(
                "[freshness] {:>4.0} s: {made} produced, {in_gold} in gold",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = producer.await??;
    anyhow::ensure!(stats.failed == 0, "{} deliveries failed", stats.failed);
    pipeline.kill().await.ok();
    let reached = gold.last().map_or(0, |g| g.1).min(total);

    let produced = produced.lock().unwrap().clone();
    let lags = latencies(&produced, &gold, reached, 2_000);
    anyhow::ensure!(!lags.is_empty(), "no play reached gold");
    let all = Quantiles::of(lags.iter().map(|l| l.1));
    // After the first minute: the pipeline's first run creates every table from empty,
    // and what it pays for that once is not the steady state.
    let steady = Quantiles::of(lags.iter().filter(|l| l.0 >= 60.0).map(|l| l.1));
    let (runs, mean): (i64, f64) = sqlx::query_as(
        "SELECT count(*), coalesce(avg(extract(epoch FROM ended_at - started_at)), 0)::float8
         FROM setlist.dag_runs WHERE dag_id = 'spotify_pipeline' AND state = 'success'",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "| freshness, {rate:.0} events/s for {}: production -> gold.agg_region_hourly, p50 / p95 (max){} | {:.1} s / {:.1} s ({:.1} s) | p95 < 15 s |",
        humantime_like(args.duration),
        if reached < total {
            format!(", of the {reached} of {total} plays in gold after {limit:?}")
        } else {
            String::new()
        },
        all.at(0.5),
        all.at(0.95),
        all.at(1.0)
    );
    if !steady.0.is_empty() {
        println!(
            "| the same, events produced after the first minute | {:.1} s / {:.1} s ({:.1} s) | p95 < 15 s |",
            steady.at(0.5),
            steady.at(0.95),
            steady.at(1.0)
        );
    }
    println!("| spotify_pipeline runs in that time, mean duration | {runs}, {mean:.1} s | |");
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}

/// For `samples` event numbers k spread over 1..=total: when the k-th event was
/// produced, and when gold first counted k minus that.
fn latencies(produced: &Timeline, gold: &Timeline, total: u64, samples: u64) -> Vec<(f64, f64)> {
    (1..=samples)
        .map(|i| (i * total / samples).max(1))
        .filter_map(|k| {
            let made = first_reaching(produced, k, true)?;
            Some((made, first_reaching(gold, k, false)? - made))
        })
        .collect()
}

/// Sorted samples, read at a quantile.
struct Quantiles(Vec<f64>);

impl Quantiles {
    fn of(samples: impl Iterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = samples.collect();
        v.sort_by(f64::total_cmp);
        Self(v)
    }

    fn at(&self, p: f64) -> f64 {
        self.0[((self.0.len() - 1) as f64 * p).round() as usize]
    }
}

/// The time a timeline first reaches `k`: the first sample that does, or (for a
/// steady stream, like production) interpolated between samples.
fn first_reaching(timeline: &Timeline, k: u64, interpolate: bool) -> Option<f64> {
    let i = timeline.iter().position(|&(_, n)| n >= k)?;
    if i == 0 || !interpolate {
        return Some(timeline[i].0);
    }
    let ((t0, n0), (t1, n1)) = (timeline[i - 1], timeline[i]);
    Some(t0 + (t1 - t0) * (k - n0) as f64 / (n1 - n0) as f64)
}

fn humantime_like(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_is_read_between_its_samples() {
        let t = vec![(0.0, 0), (1.0, 100), (2.0, 300)];
        assert_eq!(first_reaching(&t, 50, true), Some(0.5));
        assert_eq!(first_reaching(&t, 200, true), Some(1.5));
        assert_eq!(first_reaching(&t, 200, false), Some(2.0));
        assert_eq!(first_reaching(&t, 301, true), None);
    }

    #[test]
    fn latency_is_gold_time_minus_production_time() {
        let produced = vec![(0.0, 0), (10.0, 1000)];
        let gold = vec![(0.0, 0), (5.0, 0), (15.0, 1000)];
        let lags = latencies(&produced, &gold, 1000, 10);
        assert_eq!(lags.len(), 10);
        // The 500th event: produced at 5 s, counted when gold jumped, at 15 s.
        assert!((lags[4].0 - 5.0).abs() < 1e-9);
        assert!((lags[4].1 - 10.0).abs() < 1e-9);
        assert!((lags[9].1 - 5.0).abs() < 1e-9);
        let q = Quantiles::of([3.0, 1.0, 2.0].into_iter());
        assert_eq!((q.at(0.0), q.at(0.5), q.at(1.0)), (1.0, 2.0, 3.0));
    }
}
