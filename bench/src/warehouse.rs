//! Bronze load throughput into PostgreSQL.

use std::time::{Duration, Instant};

use tasks::bronze::LoadBronze;
use tasks::bronze::postgres::Postgres;
use tasks::land::{Land, Lander};
use tasks::simulate::produce;
use tasks::storage::Storage;
use tokio_util::sync::CancellationToken;

use crate::Args;
use crate::engine::fresh_db;
use crate::streaming::{kafka, simulate};

pub async fn bronze(args: &Args) -> anyhow::Result<()> {
    let n = 1_000_000;
    let (pool, _) = fresh_db(&args.admin_url).await?;
    let topic = format!("bench-bronze-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("setlist-bench-bronze-{}", std::process::id()));
    let stats = produce(
        &simulate(&topic, n),
        CancellationToken::new(),
        Duration::from_secs(3600),
        |_, _| {},
    )
    .await?;
    anyhow::ensure!(stats.failed == 0);
    let config = Land {
        kafka: kafka(&topic),
        group_id: topic.clone(),
        max_age: Duration::from_millis(500),
        ..Land::new(dir.display().to_string())
    };
    let shutdown = CancellationToken::new();
    let lander = tokio::spawn(Lander::new(config, pool.clone())?.run(shutdown.clone()));
    loop {
        let landed: i64 = sqlx::query_scalar("SELECT coalesce(sum(rows), 0)::bigint FROM setlist.raw_objects WHERE state = 'written'")
            .fetch_one(&pool)
            .await?;
        if landed as u64 >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    lander.await??;
    let loader: LoadBronze = serde_json::from_value(serde_json::json!({ "topic": topic }))?;
    let storage = Storage::open(&dir.display().to_string())?;
    let warehouse = Postgres::from_pool(pool.clone());
    let started = Instant::now();
    let report = loader.run_with(&pool, &warehouse, &storage, |_| {}).await?;
    let secs = started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&dir).ok();
    anyhow::ensure!(report.rows == n && report.failed.is_empty(), "{report:?}");
    println!(
        "| bronze load into PostgreSQL (COPY), {n} rows from {} Parquet objects | {:.0} rows/s | >= 250,000 |",
        report.objects,
        n as f64 / secs
    );
    Ok(())
}
