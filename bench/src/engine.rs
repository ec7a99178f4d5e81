//! Orchestration overhead: chain, fan-out, idle.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use orchestrator::dag::parse_dag;
use orchestrator::store::{self, runs};
use orchestrator::worker::{Worker, WorkerConfig};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::Args;

/// A fresh database with the schema.
pub async fn fresh_db(admin_url: &str) -> anyhow::Result<(PgPool, String)> {
    let admin = PgPool::connect(admin_url).await.with_context(|| {
        format!("PostgreSQL does not answer at {admin_url}; start it with scripts/postgres.sh")
    })?;
    let name = format!("setlist_bench_{}", std::process::id());
    // Earlier benchmark runs' databases are of no further use.
    let old: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'setlist_bench_%'")
            .fetch_all(&admin)
            .await?;
    for db in old.iter().filter(|d| **d != name) {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&admin)
            .await?;
    }
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    let url = format!(
        "{}/{name}",
        admin_url.rsplit_once('/').expect("a URL with a database").0
    );
    let pool = store::connect(&url, 20).await?;
    store::migrate(&pool).await?;
    Ok((pool, url))
}

pub(crate) fn chain_dag(n: usize) -> String {
    let mut s = String::from("[dag]\nid = \"chain\"\n");
    for i in 0..n {
        s += &format!("[[task]]\nid = \"t{i}\"\nkind = \"noop\"\n");
        if i > 0 {
            s += &format!("depends_on = [\"t{}\"]\n", i - 1);
        }
    }
    s
}

fn fanout_dag(width: usize) -> String {
    let mut s = String::from("[dag]\nid = \"fanout\"\n[[task]]\nid = \"start\"\nkind = \"noop\"\n");
    for i in 0..width {
        s += &format!("[[task]]\nid = \"m{i}\"\nkind = \"noop\"\ndepends_on = [\"start\"]\n");
    }
    let all: Vec<String> = (0..width).map(|i| format!("\"m{i}\"")).collect();
    s += &format!(
        "[[task]]\nid = \"end\"\nkind = \"noop\"\ndepends_on = [{}]\n",
        all.join(", ")
    );
    s
}

/// Triggers `dag`, starts it, and waits until it ends; returns (run id, run seconds).
pub(crate) async fn run_once(pool: &PgPool, dag: &orchestrator::Dag) -> anyhow::Result<(i64, f64)> {
    let id = runs::trigger(pool, dag, serde_json::json!({}), None).await?;
    runs::start_queued(pool).await?;
    loop {
        let (state, secs): (String, Option<f64>) = sqlx::query_as(
            "SELECT state::text, extract(epoch FROM ended_at - started_at)::float8 FROM setlist.dag_runs WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
        match state.as_str() {
            "success" => return Ok((id, secs.unwrap_or_default())),
            "failed" => anyhow::bail!("run {id} failed"),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub async fn chain(args: &Args) -> anyhow::Result<()> {
    let (pool, _) = fresh_db(&args.admin_url).await?;
    let registry = Arc::new(tasks::registry());
    let dag = parse_dag(Path::new("chain.toml"), &chain_dag(40), &registry)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let shutdown = CancellationToken::new();
    let worker = Arc::new(Worker::register(pool.clone(), registry, WorkerConfig::default()).await?);
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    let _ = run_once(&pool, &dag).await?; // warm-up
    let mut totals = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..10 {
        let (id, secs) = run_once(&pool, &dag).await?;
        totals.push(secs);
        ids.push(id);
    }
    shutdown.cancel();
    handle.await??;
    totals.sort_by(f64::total_cmp);
    println!(
        "| (a) chain of 40 noop tasks, 1 worker, run start -> end (10 runs) | median {:.3} s, max {:.3} s | < 0.4 s |",
        percentile(&totals, 50.0),
        totals[totals.len() - 1]
    );
    let mut hops: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM d.started_at - u.ended_at)::float8 * 1000
         FROM setlist.task_instances d
         JOIN setlist.task_instances u ON u.run_id = d.run_id AND u.task_id = ANY (d.upstream)
         WHERE d.run_id = ANY ($1)",
    )
    .bind(&ids)
    .fetch_all(&pool)
    .await?;
    hops.sort_by(f64::total_cmp);
    println!(
        "| (c) task end -> downstream start ({} hops) | p50 {:.2} ms, p95 {:.2} ms | < 5 ms, < 20 ms |",
        hops.len(),
        percentile(&hops, 50.0),
        percentile(&hops, 95.0)
    );
    let per_task: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM ended_at - started_at)::float8 * 1000 FROM setlist.task_instances WHERE run_id = ANY ($1)",
    )
    .bind(&ids)
    .fetch_all(&pool)
    .await?;
    let mean = per_task.iter().sum::<f64>() / per_task.len() as f64;
    println!(
        "| chain: a noop task's own start -> end (claim to recorded end) | mean {mean:.2} ms | - |"
    );
    Ok(())
}

pub struct Reaped(pub Vec<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn spawn_setlist(args: &Args, url: &str, dags: &Path, cmd: &[&str]) -> anyhow::Result<Child> {
    Command::new(&args.setlist)
        .args(cmd)
        .arg("--dags-dir")
        .arg(dags)
        .env("DATABASE_URL", url)
        .env("SETLIST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "start {} (build it: cargo build --release --bin setlist)",
                args.setlist.display()
            )
        })
}

pub async fn fanout(args: &Args) -> anyhow::Result<()> {
    let (pool, url) = fresh_db(&args.admin_url).await?;
    let registry = Arc::new(tasks::registry());
    let dag = parse_dag(Path::new("fanout.toml"), &fanout_dag(1000), &registry)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let _workers = two_workers(args, &pool, &url).await?;
    let mut totals = Vec::new();
    for _ in 0..3 {
        let (_, secs) = run_once(&pool, &dag).await?;
        totals.push(secs);
    }
    totals.sort_by(f64::total_cmp);
    println!(
        "| (b) fan-out 1 -> 1000 -> 1, 2 worker processes x 8 slots, run start -> end (3 runs) | median {:.3} s, max {:.3} s | < 10 s |",
        percentile(&totals, 50.0),
        totals[totals.len() - 1]
    );
    Ok(())
}

/// Two `setlist worker` processes of 8 slots on the database at `url`, once both are
/// active; they stop when the value is dropped.
async fn two_workers(args: &Args, pool: &PgPool, url: &str) -> anyhow::Result<Reaped> {
    let empty = std::env::temp_dir().join(format!("setlist-bench-{}", std::process::id()));
    std::fs::create_dir_all(&empty)?;
    let workers = Reaped(vec![
        spawn_setlist(args, url, &empty, &["worker", "--concurrency", "8"])?,
        spawn_setlist(args, url, &empty, &["worker", "--concurrency", "8"])?,
    ]);
    let started = Instant::now();
    while sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM setlist.workers WHERE state = 'active'",
    )
    .fetch_one(pool)
    .await?
        < 2
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "workers did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(workers)
}

/// (RSS kB, CPU ticks) of a process from /proc.
pub fn proc_stats(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok((rss, ticks))
}

pub async fn idle(args: &Args) -> anyhow::Result<()> {
    let (_pool, url) = fresh_db(&args.admin_url).await?;
    let dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dags");
    let child = spawn_setlist(args, &url, &dags, &["standalone"])?;
    let pid = child.id();
    let _guard = Reaped(vec![child]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, ticks0) = proc_stats(pid)?;
    let window = Duration::from_secs(30);
    let mut max_rss = 0;
    let t0 = Instant::now();
    while t0.elapsed() < window {
        max_rss = max_rss.max(proc_stats(pid)?.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (rss, ticks1) = proc_stats(pid)?;
    let hz = 100.0; // USER_HZ on Linux
    let cpu = (ticks1 - ticks0) as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "| idle `setlist standalone` (example DAGs, 1 worker x 8), over {} s | RSS {:.1} MB (max {:.1} MB), CPU {:.2} % of a core | < 50 MB, < 1 % |",
        window.as_secs(),
        rss as f64 / 1024.0,
        max_rss as f64 / 1024.0,
        cpu
    );
    Ok(())
}

fn mapped_dag(n: usize) -> String {
    format!(
        "[dag]\nid = \"mapped_{n}\"\n\
         [[task]]\nid = \"list\"\nkind = \"python\"\nparams = {{ code = \"import json; print(json.dumps(list(range({n}))))\" }}\n\
         [[task]]\nid = \"m\"\nkind = \"noop\"\ndepends_on = [\"list\"]\nmap_over = \"upstream.list.output\"\n\
         [[task]]\nid = \"end\"\nkind = \"noop\"\ndepends_on = [\"m\"]\n"
    )
}

/// Dynamic mapping on two worker processes: 1 -> 1,000 mapped -> 1 beside the static
/// 1 -> 1,000 -> 1 fan-out in the same run, then 1 -> 10,000 mapped -> 1.
pub async fn mapped(args: &Args) -> anyhow::Result<()> {
    let (pool, url) = fresh_db(&args.admin_url).await?;
    let registry = Arc::new(tasks::registry());
    let parse = |name: &str, src: String| {
        parse_dag(Path::new(name), &src, &registry).map_err(|e| anyhow::anyhow!("{e:?}"))
    };
    let static_1000 = parse("fanout.toml", fanout_dag(1000))?;
    let mapped_1000 = parse("mapped_1000.toml", mapped_dag(1000))?;
    let mapped_10000 = parse("mapped_10000.toml", mapped_dag(10_000))?;
    let _workers = two_workers(args, &pool, &url).await?;
    let (mut fixed, mut mapped) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        fixed.push(run_once(&pool, &static_1000).await?.1);
        mapped.push(run_once(&pool, &mapped_1000).await?.1);
    }
    fixed.sort_by(f64::total_cmp);
    mapped.sort_by(f64::total_cmp);
    let (f, m) = (percentile(&fixed, 50.0), percentile(&mapped, 50.0));
    println!(
        "| 1 -> 1,000 -> 1, 2 worker processes x 8 slots: static fan-out / mapped (median of 3, alternating) | {f:.3} s / {m:.3} s (ratio {:.2}) | - |",
        m / f
    );
    let (id, secs) = run_once(&pool, &mapped_10000).await?;
    let instances: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM setlist.task_instances WHERE run_id = $1 AND map_parent = 'm' AND state = 'success'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await?;
    println!(
        "| 1 -> 10,000 mapped noop instances -> 1, 2 worker processes x 8 slots, run start -> end | {secs:.2} s ({instances} instances, {:.0} instances/s) | - |",
        instances as f64 / secs
    );
    Ok(())
}

/// 1 -> 1,000 -> 1 where the 1,000 are in a pool of `pool` slots (`None`: no pool) with
/// priorities from 0 to 9 (`prioritised`), or all at one priority.
fn fanout_in_pool(width: usize, pool: Option<u32>, prioritised: bool) -> String {
    let name = match (pool, prioritised) {
        (Some(_), true) => "fanout_pool_prio",
        (Some(_), false) => "fanout_pool",
        (None, true) => "fanout_prio",
        (None, false) => "fanout_plain",
    };
    let mut s = format!("[dag]\nid = \"{name}\"\n[[task]]\nid = \"start\"\nkind = \"noop\"\n");
    for i in 0..width {
        s += &format!("[[task]]\nid = \"m{i}\"\nkind = \"noop\"\ndepends_on = [\"start\"]\n");
        if pool.is_some() {
            s += "pool = \"bench\"\n";
        }
        if prioritised {
            s += &format!("priority = {}\n", i % 10);
        }
    }
    let all: Vec<String> = (0..width).map(|i| format!("\"m{i}\"")).collect();
    s += &format!(
        "[[task]]\nid = \"end\"\nkind = \"noop\"\ndepends_on = [{}]\n",
        all.join(", ")
    );
    s
}

/// The claim with pools and priorities in use beside the plain claim, in one run on two
/// worker processes: each 1 -> 1,000 -> 1 run's time, task instances per second, and
/// its hops (an upstream's end to its downstream's start) at p50/p95/p99.
pub async fn pools(args: &Args) -> anyhow::Result<()> {
    let (pool, url) = fresh_db(&args.admin_url).await?;
    orchestrator::store::pools::sync(
        &pool,
        &std::collections::BTreeMap::from([("bench".to_string(), 16)]),
    )
    .await?;
    let registry = Arc::new(tasks::registry());
    let shapes = [
        (
            "plain claim (no pool, one priority)",
            fanout_in_pool(1000, None, false),
        ),
        ("priorities 0-9", fanout_in_pool(1000, None, true)),
        ("pool of 16 slots", fanout_in_pool(1000, Some(16), false)),
        (
            "pool of 16 slots and priorities 0-9",
            fanout_in_pool(1000, Some(16), true),
        ),
    ];
    let dags: Vec<(&str, orchestrator::Dag)> = shapes
        .iter()
        .map(|(label, src)| {
            parse_dag(Path::new("bench.toml"), src, &registry)
                .map(|d| (*label, d))
                .map_err(|e| anyhow::anyhow!("{e:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let _workers = two_workers(args, &pool, &url).await?;
    // Alternate the shapes, three rounds, so drift on a shared machine hits all alike.
    let mut results: Vec<(Vec<f64>, Vec<i64>)> = vec![(Vec::new(), Vec::new()); dags.len()];
    for _ in 0..3 {
        for (i, (_, dag)) in dags.iter().enumerate() {
            let (id, secs) = run_once(&pool, dag).await?;
            results[i].0.push(secs);
            results[i].1.push(id);
        }
    }
    let mut baseline = 0.0;
    for (i, (label, _)) in dags.iter().enumerate() {
        let (secs, ids) = &mut results[i];
        secs.sort_by(f64::total_cmp);
        let median = percentile(secs, 50.0);
        let mut hops: Vec<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM d.started_at - u.ended_at)::float8 * 1000
             FROM setlist.task_instances d
             JOIN setlist.task_instances u ON u.run_id = d.run_id AND u.task_id = ANY (d.upstream)
             WHERE d.run_id = ANY ($1) AND d.task_id <> 'end'",
        )
        .bind(&*ids)
        .fetch_all(&pool)
        .await?;
        hops.sort_by(f64::total_cmp);
        if i == 0 {
            baseline = median;
        }
        println!(
            "| 1 -> 1,000 -> 1, 2 workers x 8: {label} (median of 3) | {median:.3} s, {:.0} task instances/s, ratio {:.2}; start -> task start p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms | - |",
            1002.0 / median,
            median / baseline,
            percentile(&hops, 50.0),
            percentile(&hops, 95.0),
            percentile(&hops, 99.0),
        );
    }
    Ok(())
}
