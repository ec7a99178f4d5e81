//! Command-line definitions and dispatch. Every command reads the one configuration
//! (`setlist.toml`, `SETLIST_*` variables, then its flags) and works through the
//! [`setlist::App`] it builds.

mod airflow;
mod connections;
mod dags;
mod runs;
mod services;
mod streaming;
mod time_arg;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use orchestrator::Registry;
use setlist::App;
use setlist::config::{self, Config, Flags, Loaded};
use sqlx::PgPool;

/// Setlist: a Rust-native orchestrator for the streaming music-analytics stack.
#[derive(Debug, Parser)]
#[command(name = "setlist", version, propagate_version = true)]
pub struct Cli {
    /// The configuration file (default: setlist.toml in the working folder, if any).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The state store (database_url; DATABASE_URL or SETLIST_DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// The folder of TOML DAG files (dags_dir; SETLIST_DAGS_DIR).
    #[arg(long, global = true)]
    dags_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The state store's schema.
    #[command(subcommand)]
    Db(DbCommand),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Named connections: list them, test one.
    #[command(subcommand)]
    Connections(connections::ConnectionsCommand),
    /// Airflow: import a folder of Airflow DAG files.
    #[command(subcommand)]
    Airflow(airflow::AirflowCommand),
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
    Web(WebArgs),
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Applies pending migrations.
    Migrate,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Prints every setting with its value (secrets redacted), where the value came
    /// from, and the variable that sets it.
    Show,
}

#[derive(Debug, clap::Args)]
pub struct WebArgs {
    /// Where the web server listens (web.bind, 127.0.0.1:8080).
    #[arg(long)]
    bind: Option<std::net::SocketAddr>,
    /// Serve reads (GET) without the API token (web.public_reads).
    #[arg(long)]
    public_reads: bool,
}

impl Cli {
    /// The flags of this command line, at their settings' keys.
    fn flags(&self) -> Flags {
        let flags = Flags::new()
            .set("database_url", self.database_url.clone())
            .set("dags_dir", self.dags_dir.clone());
        match &self.command {
            Command::Scheduler(a) => a.flags(flags),
            Command::Worker(a) => a.flags(flags),
            Command::Standalone(a) => a.flags(flags),
            Command::Simulate(a) => a.flags(flags),
            Command::Land(a) => a.flags(flags),
            Command::Web(a) => flags
                .set("web.bind", a.bind.map(|b| b.to_string()))
                .set("web.public_reads", a.public_reads.then_some(true)),
            Command::Db(_)
            | Command::Config(_)
            | Command::Connections(_)
            | Command::Airflow(_)
            | Command::Dags(_)
            | Command::Runs(_)
            | Command::Tasks(_) => flags,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let loaded = config::load(cli.config.as_deref(), &vars, cli.flags())?;
    let ctx = Ctx {
        registry: Arc::new(setlist::app::registry(&loaded.config)),
        loaded,
    };
    match cli.command {
        Command::Db(DbCommand::Migrate) => {
            ctx.pool(2).await?;
            println!("State store is up to date.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Show) => {
            print!("{}", ctx.loaded.show());
            Ok(ExitCode::SUCCESS)
        }
        Command::Connections(c) => connections::run(&ctx, c).await,
        Command::Airflow(c) => airflow::run(&ctx, c).await,
        Command::Dags(c) => dags::run(&ctx, c).await,
        Command::Runs(c) => runs::run_runs(&ctx, c).await,
        Command::Tasks(c) => runs::run_tasks(&ctx, c).await,
        Command::Scheduler(_) => services::scheduler(&ctx).await,
        Command::Worker(_) => services::worker(&ctx).await,
        Command::Standalone(_) => services::standalone(&ctx).await,
        Command::Simulate(a) => streaming::simulate(&ctx, a).await,
        Command::Land(a) => streaming::land(&ctx, a).await,
        Command::Web(_) => web::run(&ctx).await,
    }
}

/// What every command may need.
pub struct Ctx {
    loaded: Loaded,
    registry: Arc<Registry>,
}

impl Ctx {
    /// The configuration.
    fn config(&self) -> &Config {
        &self.loaded.config
    }

    /// The App on the configured state store, migrated.
    async fn app(&self, max_connections: u32) -> anyhow::Result<App> {
        App::connect(self.config().clone(), max_connections).await
    }

    /// A pool on the state store, migrated.
    async fn pool(&self, max_connections: u32) -> anyhow::Result<PgPool> {
        Ok(self.app(max_connections).await?.pool)
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. \"5s\", \"1m\")"))
}
