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
        let (secs, _) = dbt(&database, &["build"]).await?;
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
    if let Ok(snapshot) = std::env::var("SETLIST_BENCH_SNAPSHOT") {
        // Keep the warehouse as it is before the incremental run, to try changes on.
        pool.close().await;
        let admin = sqlx::PgPool::connect(&args.admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {snapshot}"))
            .execute(&admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {snapshot} TEMPLATE {database}"))
            .execute(&admin)
            .await?;
        println!("kept the warehouse before the incremental run as database {snapshot}");
    }
    let (models, output) = dbt(&database, &["run"]).await?;
    println!(
        "| incremental `dbt run` (models only) over that minute; slowest: {} | {models:.1} s | < 5 s |",
        slowest_nodes(&output, 3)
    );
    let (tests, _) = dbt(&database, &["test"]).await?;
    println!("| `dbt test` after it, every test over all 1.6 M plays | {tests:.1} s | |");
    Ok(())
}

/// The `n` slowest nodes of a dbt task's output.
fn slowest_nodes(output: &serde_json::Value, n: usize) -> String {
    let mut nodes: Vec<(f64, String)> = output["results"]
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
    nodes
        .iter()
        .take(n)
        .map(|(secs, name)| format!("{name} {secs:.1} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SETLIST_DBT, else the dbt that scripts/dbt.sh installs.
pub fn dbt_binary() -> String {
    std::env::var("SETLIST_DBT").unwrap_or_else(|_| {
        format!(
            "{}/.cache/setlist/tools/dbt-1.11/bin/dbt",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// Runs one dbt command of the project against `database` through the `dbt` task
/// kind, as the pipeline does (in its warm dbt process after the first command);
/// returns its wall-clock seconds and the task's output.
pub async fn dbt(database: &str, command: &[&str]) -> anyhow::Result<(f64, serde_json::Value)> {
    let dbt = dbt_binary();
    let task: tasks::dbt::Dbt = serde_json::from_value(serde_json::json!({
        "command": command[0],
        "args": &command[1..],
        "project_dir": concat!(env!("CARGO_MANIFEST_DIR"), "/../dbt"),
        "env": { "SETLIST_WAREHOUSE_DB": database },
        "dbt": dbt,
    }))?;
    let ctx = orchestrator::TaskContext::adhoc(
        "bench",
        &command.join("_"),
        orchestrator::LogSink::discard(),
        tokio_util::sync::CancellationToken::new(),
    );
    let started = Instant::now();
    let output = orchestrator::Task::run(&task, &ctx)
        .await
        .with_context(|| format!("dbt {command:?} (install dbt with scripts/dbt.sh)"))?;
    Ok((started.elapsed().as_secs_f64(), output))
}
