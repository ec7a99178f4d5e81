//! Command-line definitions and dispatch.

mod dags;
mod runs;
mod services;
mod streaming;
mod supervise;
mod time_arg;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use orchestrator::{Registry, store};
use sqlx::PgPool;

/// Setlist: a Rust-native orchestrator for the streaming music-analytics stack.
#[derive(Debug, Parser)]
#[command(name = "setlist", version, propagate_version = true)]
pub struct Cli {
    /// The state store.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/setlist"
    )]
    database_url: String,
    /// The folder of TOML DAG files.
    #[arg(long, global = true, env = "SETLIST_DAGS_DIR", default_value = "dags")]
    dags_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The state store's schema.
    #[command(subcommand)]
    Db(DbCommand),
    /// DAG files and DAGs.
    #[command(subcommand)]
    Dags(dags::DagsCommand),
    /// DAG runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Task instances of a run.
    #[command(subcommand)]
    Tasks(runs::TasksCommand),
    /// Runs the scheduler until interrupted.
    Scheduler(services::SchedulerArgs),
    /// Runs a worker until interrupted.
    Worker(services::WorkerArgs),
    /// Runs the scheduler and workers in one process, like `airflow standalone`.
    Standalone(services::StandaloneArgs),
    /// Produces simulated play events to Kafka.
    Simulate(streaming::SimulateArgs),
    /// Lands play events from Kafka in object storage as Parquet, exactly once.
    Land(streaming::LandArgs),
    /// Serves the web UI and the REST API until interrupted.
    Web(web::WebArgs),
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Applies pending migrations.
    Migrate,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let registry = Arc::new(tasks::registry());
    let ctx = Ctx {
        database_url: cli.database_url,
        dags_dir: cli.dags_dir,
        registry,
    };
    match cli.command {
        Command::Db(DbCommand::Migrate) => {
            let pool = ctx.pool(2).await?;
            store::migrate(&pool).await?;
            println!("State store is up to date.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Dags(c) => dags::run(&ctx, c).await,
        Command::Runs(c) => runs::run_runs(&ctx, c).await,
        Command::Tasks(c) => runs::run_tasks(&ctx, c).await,
        Command::Scheduler(a) => services::scheduler(&ctx, a).await,
        Command::Worker(a) => services::worker(&ctx, a).await,
        Command::Standalone(a) => services::standalone(&ctx, a).await,
        Command::Simulate(a) => streaming::simulate(&ctx, a).await,
        Command::Land(a) => streaming::land(&ctx, a).await,
        Command::Web(a) => web::run(&ctx, a).await,
    }
}

/// What every command may need.
pub struct Ctx {
    database_url: String,
    dags_dir: PathBuf,
    registry: Arc<Registry>,
}

impl Ctx {
    /// Connects to the state store and applies pending migrations.
    async fn pool(&self, max_connections: u32) -> anyhow::Result<PgPool> {
        let pool = store::connect(&self.database_url, max_connections).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the state store at {}: {e}\n(start PostgreSQL with `scripts/postgres.sh`, or set DATABASE_URL)",
                redact(&self.database_url)
            )
        })?;
        store::migrate(&pool).await?;
        Ok(pool)
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{}{user}{hidden}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. \"5s\", \"1m\")"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            super::redact("postgres://me:secret@host/db"),
            "postgres://me:***@host/db"
        );
        assert_eq!(
            super::redact("postgres://me@host/db"),
            "postgres://me@host/db"
        );
    }
}
