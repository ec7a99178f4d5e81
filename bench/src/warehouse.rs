//! Bronze load throughput into PostgreSQL.

use std::time::Instant;

use anyhow::Context;

use tasks::bronze::LoadBronze;
use tasks::bronze::postgres::Postgres;
use tasks::storage::Storage;

use crate::Args;
use crate::engine::fresh_db;
use crate::streaming::produce_and_land;

pub async fn bronze(args: &Args) -> anyhow::Result<()> {
    let n = 1_000_000;
    let (pool, url) = fresh_db(&args.admin_url).await?;
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
    let database = url.rsplit('/').next().unwrap_or_default().to_string();
    println!(
        "| bronze load into PostgreSQL (COPY), {n} rows from {} Parquet objects | {:.0} rows/s | >= 250,000 |",
        report.objects,
        n as f64 / secs
    );
    for label in ["from empty", "again, no new data"] {
        let secs = dbt_build(&database).await?;
        println!(
            "| `dbt build` over {n} plays, {label} (47 nodes) | {secs:.1} s | < 60 s from empty |"
        );
    }
    Ok(())
}

/// Runs the project's `dbt build` against `database`; returns its wall-clock seconds.
async fn dbt_build(database: &str) -> anyhow::Result<f64> {
    let dbt = std::env::var("SETLIST_DBT").unwrap_or_else(|_| {
        format!(
            "{}/.cache/setlist/tools/dbt-1.11/bin/dbt",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let project = concat!(env!("CARGO_MANIFEST_DIR"), "/../dbt");
    let target = std::env::temp_dir().join(format!("setlist-bench-dbt-{}", std::process::id()));
    let started = Instant::now();
    let status = tokio::process::Command::new(&dbt)
        .args([
            "build",
            "--project-dir",
            project,
            "--profiles-dir",
            project,
            "--target-path",
        ])
        .arg(&target)
        .env("SETLIST_WAREHOUSE_DB", database)
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .with_context(|| format!("run {dbt} (install it with scripts/dbt.sh)"))?;
    anyhow::ensure!(status.success(), "dbt build failed: {status}");
    Ok(started.elapsed().as_secs_f64())
}
