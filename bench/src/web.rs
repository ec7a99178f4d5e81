//! The web server under load: the DAG grid page with 1,000 runs x 20 tasks in the
//! store, the API's trigger at 200 requests/s (wrk), and the analytics page over
//! 10,000,000 plays in gold. Each against the release `setlist web`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use orchestrator::dag::parse_dag;
use orchestrator::store::runs;

use crate::Args;
use crate::engine::{Reaped, fresh_db, percentile};

const TOKEN: &str = "bench-token-0123456789";

/// A DAG of 20 noop tasks in four layers of five, each task after the whole layer
/// before it.
fn wide_dag() -> String {
    let mut s = String::from("[dag]\nid = \"wide\"\nschedule = \"@hourly\"\n");
    for layer in 0..4 {
        for i in 0..5 {
            s.push_str(&format!(
                "[[task]]\nid = \"t{layer}_{i}\"\nkind = \"noop\"\n"
            ));
            if layer > 0 {
                let up: Vec<String> = (0..5).map(|j| format!("\"t{}_{j}\"", layer - 1)).collect();
                s.push_str(&format!("depends_on = [{}]\n", up.join(", ")));
            }
        }
    }
    s
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `setlist web` on a free port; returns it with its base URL once it answers.
async fn start_web(
    args: &Args,
    url: &str,
    dags: &Path,
    warehouse: Option<&str>,
) -> anyhow::Result<(Child, String)> {
    let bind = format!("127.0.0.1:{}", free_port()?);
    let mut cmd = Command::new(&args.setlist);
    cmd.args(["web", "--bind", &bind, "--public-reads", "--dags-dir"])
        .arg(dags)
        .env("DATABASE_URL", url)
        .env("SETLIST_API_TOKEN", TOKEN)
        .env("SETLIST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(w) = warehouse {
        cmd.env("SETLIST_WAREHOUSE_URL", w);
    }
    let child = cmd.spawn().with_context(|| {
        format!(
            "start {} (build it: cargo build --release --bin setlist)",
            args.setlist.display()
        )
    })?;
    let base = format!("http://{bind}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(20),
            "setlist web did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, base))
}

/// GETs `url` `n` times one after another (after 20 to warm up); returns each
/// request's milliseconds, sorted, and checks every answer was 200.
async fn timed_gets(url: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let started = Instant::now();
        let res = client.get(url).send().await?;
        let status = res.status();
        let body = res.bytes().await?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(
            status.is_success(),
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        if i >= 20 {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

fn dags_dir(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("setlist-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("wide.toml"), wide_dag())?;
    Ok(dir)
}

pub async fn grid(args: &Args) -> anyhow::Result<()> {
    let (pool, url) = fresh_db(&args.admin_url).await?;
    let dir = dags_dir("grid")?;
    let registry = tasks::registry();
    let dag = parse_dag(&dir.join("wide.toml"), &wide_dag(), &registry)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // 1,000 runs through the engine's own trigger, then ended as a worker would have.
    let first = Utc::now() - TimeDelta::hours(1000);
    for i in 0..1000 {
        runs::trigger(
            &pool,
            &dag,
            serde_json::json!({}),
            Some(first + TimeDelta::hours(i)),
        )
        .await?;
    }
    sqlx::query(
        "UPDATE setlist.task_instances SET try_number = 1,
             state = (CASE WHEN (id % 97) = 0 THEN 'failed' ELSE 'success' END)::setlist.task_state,
             started_at = now() - interval '1 hour', ended_at = now() - interval '59 minutes'",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "UPDATE setlist.dag_runs r SET started_at = now() - interval '1 hour', ended_at = now(),
             state = (CASE WHEN EXISTS (SELECT 1 FROM setlist.task_instances t
                                       WHERE t.run_id = r.id AND t.state = 'failed')
                          THEN 'failed' ELSE 'success' END)::setlist.run_state",
    )
    .execute(&pool)
    .await?;
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM setlist.task_instances")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(tasks == 20_000, "{tasks} task instances");
    let (web, base) = start_web(args, &url, &dir, None).await?;
    let _web = Reaped(vec![web]);
    let last_run: i64 = sqlx::query_scalar("SELECT max(id) FROM setlist.dag_runs")
        .fetch_one(&pool)
        .await?;
    for (what, path) in [
        (
            "a DAG's page (graph, grid of 25 runs x 20 tasks, durations of 100 runs)",
            "/dags/wide".to_string(),
        ),
        ("the DAGs page (12 latest runs per DAG)", "/".to_string()),
        (
            "a run's page (20 tasks with gantt bars)",
            format!("/runs/{last_run}"),
        ),
    ] {
        let t = timed_gets(&format!("{base}{path}"), 500).await?;
        println!(
            "| {what}, 1,000 runs x 20 tasks in the store, 500 requests | p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms | p95 < 50 ms |",
            percentile(&t, 50.0),
            percentile(&t, 95.0),
            percentile(&t, 99.0)
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

pub async fn trigger(args: &Args) -> anyhow::Result<()> {
    let (pool, url) = fresh_db(&args.admin_url).await?;
    let dir = dags_dir("trigger")?;
    let (web, base) = start_web(args, &url, &dir, None).await?;
    let _web = Reaped(vec![web]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/wrk/trigger.lua");
    // Each connection waits between requests so that all of them offer 200/s; the
    // 2 ms less covers a request's own time.
    let connections = 20;
    let out = Command::new("wrk")
        .args([
            "-t",
            "2",
            "-c",
            &connections.to_string(),
            "-d",
            "30s",
            "--latency",
            "-s",
            script,
        ])
        .arg(format!("{base}/api/v1/dags/wide/runs"))
        .env("SETLIST_API_TOKEN", TOKEN)
        .env("SETLIST_WRK_DELAY_MS", (connections * 5 - 2).to_string())
        .output()
        .context("run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> anyhow::Result<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no {name} in wrk's output:\n{text}"))
    };
    let (rate, bad) = (field("Requests/sec:")?, field("non-2xx:")?);
    let (p50, p95, p99) = (field("p50_us:")?, field("p95_us:")?, field("p99_us:")?);
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM setlist.dag_runs")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(bad == 0.0, "{bad} triggers were refused:\n{text}");
    println!(
        "| POST /api/v1/dags/wide/runs (20 tasks each) with wrk, {connections} connections for 30 s at {rate:.0} req/s; {created} runs created | p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms | p99 < 20 ms at 200 req/s |",
        p50 / 1e3,
        p95 / 1e3,
        p99 / 1e3
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

pub async fn analytics(args: &Args) -> anyhow::Result<()> {
    let n: u64 = 10_000_000;
    let days = 30;
    let (pool, url) = fresh_db(&args.admin_url).await?;
    let topic = format!("bench-analytics-{}", std::process::id());
    let lake = std::env::temp_dir().join(format!("setlist-bench-lake-{}", std::process::id()));
    // A month of history: 10 M plays stamped over 30 days, produced as fast as the
    // broker takes them.
    let sim = tasks::simulate::Simulate {
        start: Some(Utc::now() - TimeDelta::days(days)),
        history_rate: Some(n as f64 / (days as f64 * 86_400.0)),
        ..crate::streaming::simulate(&topic, n)
    };
    let started = Instant::now();
    crate::streaming::produce_and_land_with(&pool, sim, &lake.display().to_string(), Vec::new())
        .await?;
    eprintln!(
        "produced and landed {n} plays in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let loader: tasks::bronze::LoadBronze =
        serde_json::from_value(serde_json::json!({ "topic": topic }))?;
    let storage = tasks::storage::Storage::open(&lake.display().to_string())?;
    let warehouse = tasks::bronze::postgres::Postgres::from_pool(pool.clone());
    let report = loader.run_with(&pool, &warehouse, &storage, |_| {}).await?;
    anyhow::ensure!(report.rows == n && report.failed.is_empty(), "{report:?}");
    std::fs::remove_dir_all(&lake).ok();
    let database = url.rsplit('/').next().unwrap_or_default().to_string();
    let (build, _) =
        crate::warehouse::dbt(&database, &["build", "--exclude", "tag:full_scan"]).await?;
    eprintln!("dbt build over {n} plays: {build:.0} s");
    let gold: i64 = sqlx::query_scalar("SELECT count(*) FROM gold.fct_plays")
        .fetch_one(&pool)
        .await?;
    let dir = dags_dir("analytics")?;
    let (web, base) = start_web(args, &url, &dir, Some(&url)).await?;
    let _web = Reaped(vec![web]);
    let first = (Utc::now() - TimeDelta::days(days)).date_naive();
    let last = Utc::now().date_naive();
    for (what, path) in [
        (
            "the analytics page, default range (last 7 days)",
            "/analytics".to_string(),
        ),
        (
            "the analytics page, the whole month",
            format!("/analytics?from={first}&to={last}"),
        ),
    ] {
        let t = timed_gets(&format!("{base}{path}"), 200).await?;
        println!(
            "| {what}, {gold} plays over {days} days in gold, 200 requests | p50 {:.1} ms, p95 {:.1} ms | p95 < 200 ms |",
            percentile(&t, 50.0),
            percentile(&t, 95.0)
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
