//! Bronze load throughput into PostgreSQL.

use std::time::Instant;

use anyhow::Context;

use tasks::bronze::LoadBronze;
use tasks::bronze::postgres::Postgres;
use tasks::storage::Storage;

use crate::Args;
use crate::engine::fresh_db;
use crate::streaming::{produce_and_land, produce_and_land_with, simulate};

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
    anyhow::ensure!(report.rows == n && report.failed.is_empty(), "{report:?}");
    let database = url.rsplit('/').next().unwrap_or_default().to_string();
    println!(
        "| bronze load into PostgreSQL (COPY), {n} rows from {} Parquet objects | {:.0} rows/s | >= 250,000 |",
        report.objects,
        n as f64 / secs
    );
    for label in ["from empty", "again, no new data"] {
        let secs = dbt(&database, &["build"]).await?;
        println!("| `dbt build` over {n} plays, {label} | {secs:.1} s | < 60 s from empty |");
    }
    // One more minute at 10,000 events/s: 600,000 new plays on top of the million.
    let minute = 600_000;
    let sim = tasks::simulate::Simulate {
        seed: 2,
        ..simulate(&topic, minute)
    };
    produce_and_land_with(&pool, sim, &dir.display().to_string(), Vec::new()).await?;
    let started = Instant::now();
    let report = loader.run_with(&pool, &warehouse, &storage, |_| {}).await?;
    let load_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.rows == minute, "{report:?}");
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "| load_bronze of one minute at 10,000 events/s ({minute} rows) | {load_secs:.1} s | |"
    );
    let models = dbt(&database, &["run"]).await?;
    println!(
        "| incremental `dbt run` (models only) over that minute; slowest: {} | {models:.1} s | < 5 s |",
        slowest_nodes(3)?
    );
    let tests = dbt(&database, &["test"]).await?;
    println!("| `dbt test` after it, every test over all 1.6 M plays | {tests:.1} s | |");
    Ok(())
}

/// The `n` slowest nodes of the last dbt command, from its run_results.json.
fn slowest_nodes(n: usize) -> anyhow::Result<String> {
    let path = dbt_target().join("run_results.json");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let mut nodes: Vec<(f64, String)> = results["results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let id = r["unique_id"].as_str().unwrap_or_default();
            let name = id.rsplit('.').next().unwrap_or(id).to_string();
            (r["execution_time"].as_f64().unwrap_or_default(), name)
        })
        .collect();
    nodes.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(nodes
        .iter()
        .take(n)
        .map(|(secs, name)| format!("{name} {secs:.1} s"))
        .collect::<Vec<_>>()
        .join(", "))
}

fn dbt_target() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("setlist-bench-dbt-{}", std::process::id()))
}

/// Runs one dbt command of the project against `database`; returns its wall-clock seconds.
pub async fn dbt(database: &str, command: &[&str]) -> anyhow::Result<f64> {
    let dbt = std::env::var("SETLIST_DBT").unwrap_or_else(|_| {
        format!(
            "{}/.cache/setlist/tools/dbt-1.11/bin/dbt",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let project = concat!(env!("CARGO_MANIFEST_DIR"), "/../dbt");
    let target = dbt_target();
    let started = Instant::now();
    let status = tokio::process::Command::new(&dbt)
        .args(command)
        .args([
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
    anyhow::ensure!(status.success(), "dbt {command:?} failed: {status}");
    Ok(started.elapsed().as_secs_f64())
}
