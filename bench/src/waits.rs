//! Waits that hold no worker: 1,000 `wait_until` tasks on one worker with 8 slots,
//! sampled every 100 ms for how many slots are busy while they wait, and a 40-task
//! noop chain run beside them and alone, to show the slots stay free for other work.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator::dag::parse_dag;
use orchestrator::worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::Args;
use crate::engine::{chain_dag, fresh_db, percentile, run_once};

const WAITS: usize = 1000;

fn waits_dag(until: chrono::DateTime<chrono::Utc>) -> String {
    let mut s = String::from("[dag]\nid = \"waits\"\n");
    for i in 0..WAITS {
        s += &format!(
            "[[task]]\nid = \"w{i}\"\nkind = \"wait_until\"\nparams = {{ target_time = \"{}\", poke_interval = \"5s\" }}\n",
            until.to_rfc3339()
        );
    }
    s
}

pub async fn waits(args: &Args) -> anyhow::Result<()> {
    let (pool, _) = fresh_db(&args.admin_url).await?;
    let registry = Arc::new(tasks::registry());
    let chain = parse_dag(Path::new("chain.toml"), &chain_dag(40), &registry)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let shutdown = CancellationToken::new();
    let worker = Arc::new(
        Worker::register(
            pool.clone(),
            Arc::clone(&registry),
            WorkerConfig {
                concurrency: 8,
                ..WorkerConfig::default()
            },
        )
        .await?,
    );
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    let _ = run_once(&pool, &chain).await?; // warm-up
    let mut alone = Vec::new();
    for _ in 0..5 {
        alone.push(run_once(&pool, &chain).await?.1);
    }

    let until = chrono::Utc::now() + chrono::Duration::seconds(25);
    let dag = parse_dag(Path::new("waits.toml"), &waits_dag(until), &registry)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let id = orchestrator::store::runs::trigger(&pool, &dag, serde_json::json!({}), None).await?;
    orchestrator::store::runs::start_queued(&pool).await?;
    // Sample while all of them wait: from the moment every one poked once until the
    // target time.
    let started = Instant::now();
    let mut running_samples = Vec::new();
    let mut beside = Vec::new();
    let mut all_waiting_after = None;
    let mut held_by_waiting = 0;
    loop {
        let (running, waiting, holding): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'waiting'),
                    count(*) FILTER (WHERE state = 'waiting' AND worker_id IS NOT NULL)
             FROM setlist.task_instances WHERE run_id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await?;
        if waiting as usize == WAITS && all_waiting_after.is_none() {
            all_waiting_after = Some(started.elapsed());
        }
        if all_waiting_after.is_some() {
            running_samples.push(running as f64);
            held_by_waiting = held_by_waiting.max(holding);
            if beside.len() < 5 {
                beside.push(run_once(&pool, &chain).await?.1);
            }
        }
        if chrono::Utc::now() >= until - chrono::Duration::milliseconds(500) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then every wait ends at its first poke after the target.
    loop {
        let state: String =
            sqlx::query_scalar("SELECT state::text FROM setlist.dag_runs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await?;
        if state == "success" {
            break;
        }
        anyhow::ensure!(state != "failed", "the waits' run failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done_after_target = (chrono::Utc::now() - until).num_milliseconds() as f64 / 1000.0;
    let pokes: i64 = sqlx::query_scalar(
        "SELECT sum(a.pokes) FROM setlist.attempts a JOIN setlist.task_instances t ON t.id = a.ti_id WHERE t.run_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await?;
    shutdown.cancel();
    handle.await??;

    running_samples.sort_by(f64::total_cmp);
    let mean = running_samples.iter().sum::<f64>() / running_samples.len().max(1) as f64;
    println!(
        "| 1,000 waits on 1 worker x 8 slots: all waiting after | {:.1} s | - |",
        all_waiting_after.unwrap_or_default().as_secs_f64()
    );
    println!(
        "| slots busy while they wait ({} samples, 100 ms apart; only pokes, 1,000 every 5 s, and the chain's tasks) | mean {mean:.2}, p95 {:.0}, max {:.0} of 8 | - |",
        running_samples.len(),
        percentile(&running_samples, 95.0),
        running_samples.last().copied().unwrap_or_default()
    );
    let idle = running_samples.iter().filter(|r| **r == 0.0).count() as f64
        / running_samples.len().max(1) as f64;
    println!(
        "| waits holding a worker between pokes (max over the samples) | {held_by_waiting} | 0 |"
    );
    println!(
        "| samples with no slot busy at all | {:.0} % | - |",
        idle * 100.0
    );
    println!("| pokes in all (every 5 s for 25 s) | {pokes} | - |");
    println!("| last wait done after its target time | {done_after_target:.2} s | - |");
    alone.sort_by(f64::total_cmp);
    beside.sort_by(f64::total_cmp);
    let (a, b) = (percentile(&alone, 50.0), percentile(&beside, 50.0));
    println!(
        "| 40-noop chain run alone / beside 1,000 waits (median of 5) | {a:.3} s / {b:.3} s (ratio {:.2}) | - |",
        b / a
    );
    Ok(())
}
