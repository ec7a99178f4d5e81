//! Orchestration-overhead benchmarks with `noop` tasks, measured from the state
//! store's own timestamps. Each run uses a fresh database. Prints markdown rows.
//!
//!   target/release/setlist-bench engine | streaming | <one of them>
//!
//! Needs PostgreSQL (scripts/postgres.sh) and the release `setlist` binary for the
//! multi-process and idle measurements (cargo build --release --bin setlist).

mod engine;
mod freshness;
mod streaming;
mod waits;
mod warehouse;
mod web;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
pub struct Args {
    /// A PostgreSQL URL whose user may create databases.
    #[arg(
        long,
        env = "SETLIST_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub admin_url: String,
    /// The setlist binary for worker processes and the idle measurement.
    #[arg(long, default_value = "target/release/setlist")]
    pub setlist: PathBuf,
    /// freshness: the events per second to sustain.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// freshness: for how long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Clone, Copy)]
enum What {
    /// (a) A chain of 40 noop tasks on one worker, and (c) the end-to-start latency.
    Chain,
    /// (b) Fan-out 1 -> 1000 -> 1 on two worker processes.
    Fanout,
    /// Idle `setlist standalone`: RSS and CPU.
    Idle,
    /// The event generator alone, on one core.
    Generator,
    /// Simulator -> tansu, beside a minimal producer loop (the broker's ceiling).
    Produce,
    /// tansu -> lander -> Parquet, on a local folder and on SeaweedFS.
    Land,
    /// Lander RSS while events arrive at 100,000/s.
    LandRss,
    /// Raw Parquet -> bronze.plays on PostgreSQL, then dbt from empty and incremental.
    Bronze,
    /// Production -> gold latency at a steady rate (--rate, --duration).
    Freshness,
    /// 1,000 waits on one worker with 8 slots: the slots they hold.
    Waits,
    /// Dynamic mapping: 1 -> 1,000 mapped -> 1 beside the static fan-out, and 10,000.
    Mapped,
    /// The claim with pools and priorities beside the plain claim.
    Pools,
    /// The engine benchmarks (chain, fanout, idle, mapped, waits).
    Engine,
    /// The streaming benchmarks (generator, produce, land, land-rss).
    Streaming,
    /// A DAG's page, the DAGs page and a run's page with 1,000 runs x 20 tasks.
    Grid,
    /// The API's trigger at 200 requests/s (wrk).
    Trigger,
    /// The analytics page over 10,000,000 plays in gold.
    Analytics,
    /// The web benchmarks (grid, trigger, analytics).
    Web,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("| measure | result | target |");
    println!("| --- | --- | --- |");
    let what = args.what;
    if matches!(what, What::Chain | What::Engine) {
        engine::chain(&args).await?;
    }
    if matches!(what, What::Fanout | What::Engine) {
        engine::fanout(&args).await?;
    }
    if matches!(what, What::Idle | What::Engine) {
        engine::idle(&args).await?;
    }
    if matches!(what, What::Pools | What::Engine) {
        engine::pools(&args).await?;
    }
    if matches!(what, What::Mapped | What::Engine) {
        engine::mapped(&args).await?;
    }
    if matches!(what, What::Waits | What::Engine) {
        waits::waits(&args).await?;
    }
    if matches!(what, What::Generator | What::Streaming) {
        streaming::generator();
    }
    if matches!(what, What::Produce | What::Streaming) {
        streaming::produce(&args).await?;
    }
    if matches!(what, What::Land | What::Streaming) {
        streaming::land(&args).await?;
    }
    if matches!(what, What::LandRss | What::Streaming) {
        streaming::land_rss(&args).await?;
    }
    if matches!(what, What::Bronze) {
        warehouse::bronze(&args).await?;
    }
    if matches!(what, What::Grid | What::Web) {
        web::grid(&args).await?;
    }
    if matches!(what, What::Trigger | What::Web) {
        web::trigger(&args).await?;
    }
    if matches!(what, What::Analytics | What::Web) {
        web::analytics(&args).await?;
    }
    if matches!(what, What::Freshness) {
        freshness::freshness(&args).await?;
    }
    Ok(())
}
