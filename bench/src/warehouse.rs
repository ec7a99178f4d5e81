//! Bronze load throughput into PostgreSQL.

use std::time::Instant;

use tasks::bronze::LoadBronze;
use tasks::bronze::postgres::Postgres;
use tasks::storage::Storage;

use crate::Args;
use crate::engine::fresh_db;
use crate::streaming::produce_and_land;

pub async fn bronze(args: &Args) -> anyhow::Result<()> {
    let n = 1_000_000;
    let (pool, _) = fresh_db(&args.admin_url).await?;
    let topic = format!("bench-bronze-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("setlist-bench-bronze-{}", std::process::id()));
    produce_and_land(&pool, &topic, &dir.display().to_string(), Vec::new(), n).await?;
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
