//! The long-running services: scheduler, worker, standalone. Each command turns its
//! flags into settings and asks the [`setlist::App`] to run the services it names.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use setlist::Services;
use setlist::config::Flags;
use setlist::shutdown_on_signal;

use super::{Ctx, parse_duration};

/// A duration as the configuration writes it.
pub(super) fn duration(d: Option<Duration>) -> Option<String> {
    d.map(|d| humantime::format_duration(d).to_string())
}

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Give up on a worker silent for this long and retry its work
    /// (scheduler.worker_timeout, 30s).
    #[arg(long, value_parser = parse_duration)]
    worker_timeout: Option<Duration>,
    /// How often to reap lost workers and sweep finished runs
    /// (scheduler.housekeeping_interval, 5s).
    #[arg(long, value_parser = parse_duration)]
    housekeeping_interval: Option<Duration>,
    /// How often to re-read the DAG folder (scheduler.reload_interval, 30s).
    #[arg(long, value_parser = parse_duration)]
    reload_interval: Option<Duration>,
}

impl SchedulerArgs {
    /// The flags given, at their settings' keys.
    pub fn flags(&self, flags: Flags) -> Flags {
        flags
            .set("scheduler.worker_timeout", duration(self.worker_timeout))
            .set(
                "scheduler.housekeeping_interval",
                duration(self.housekeeping_interval),
            )
            .set("scheduler.reload_interval", duration(self.reload_interval))
    }
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Task instances this worker runs at once (worker.concurrency, 8).
    #[arg(long)]
    concurrency: Option<usize>,
    /// How often the worker says it is alive (worker.heartbeat_interval, 5s).
    #[arg(long, value_parser = parse_duration)]
    heartbeat_interval: Option<Duration>,
    /// The queues it claims from, comma-separated (worker.queues, default).
    #[arg(long, value_delimiter = ',')]
    queues: Option<Vec<String>>,
}

impl WorkerArgs {
    /// The flags given, at their settings' keys.
    pub fn flags(&self, flags: Flags) -> Flags {
        flags
            .set("worker.concurrency", self.concurrency)
            .set(
                "worker.heartbeat_interval",
                duration(self.heartbeat_interval),
            )
            .set("worker.queues", self.queues.clone())
    }
}

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    #[command(flatten)]
    scheduler: SchedulerArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    /// Workers in this process (worker.count, 1).
    #[arg(long)]
    workers: Option<usize>,
    /// Also run the simulator at this many events per second; 0: no simulator
    /// (simulate.rate).
    #[arg(long)]
    simulate_rate: Option<f64>,
    /// Also run the lander (land.enabled).
    #[arg(long)]
    land: bool,
    /// The lander writes a partition's open batch once it is this old (land.max_age).
    #[arg(long, value_parser = parse_duration)]
    land_max_age: Option<Duration>,
    /// Kafka bootstrap servers for the simulator and the lander (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// The topic of play events (kafka.topic).
    #[arg(long)]
    topic: Option<String>,
    /// Also serve the web UI and REST API here, e.g. 127.0.0.1:8080 (web.bind).
    #[arg(long)]
    web: Option<std::net::SocketAddr>,
    /// With --web: serve reads (GET) without the API token (web.public_reads).
    #[arg(long)]
    public_reads: bool,
    /// Where the lander writes: a folder, file:///dir, or s3://bucket[/prefix]
    /// (store.url).
    #[arg(long)]
    store_url: Option<String>,
}

impl StandaloneArgs {
    /// The flags given, at their settings' keys.
    pub fn flags(&self, flags: Flags) -> Flags {
        let flags = self.worker.flags(self.scheduler.flags(flags));
        flags
            .set("worker.count", self.workers)
            .set("simulate.rate", self.simulate_rate)
            .set("land.enabled", self.land.then_some(true))
            .set("land.max_age", duration(self.land_max_age))
            .set("kafka.brokers", self.brokers.clone())
            .set("kafka.topic", self.topic.clone())
            .set("web.enabled", self.web.map(|_| true))
            .set("web.bind", self.web.map(|a| a.to_string()))
            .set("web.public_reads", self.public_reads.then_some(true))
            .set("store.url", self.store_url.clone())
    }
}

pub async fn scheduler(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let app = ctx.app(4).await?;
    let services = Services {
        scheduler: true,
        ..Services::default()
    };
    app.run(services, shutdown_on_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn worker(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let app = ctx.app(ctx.config().worker.concurrency as u32 + 4).await?;
    let services = Services {
        workers: 1,
        ..Services::default()
    };
    app.run(services, shutdown_on_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn standalone(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let c = ctx.config();
    let workers = c.worker.count;
    let app = ctx.app((c.worker.concurrency * workers) as u32 + 6).await?;
    let services = Services {
        scheduler: true,
        workers,
        simulator: c.simulate.rate > 0.0,
        lander: c.land.enabled,
        web: c.web.enabled,
    };
    let shutdown = shutdown_on_signal();
    println!("Setlist standalone is running (Ctrl-C stops it):");
    println!("  state store  {}", c.database_url);
    println!("  DAG folder   {}", c.dags_dir.display());
    println!("  scheduler    1");
    println!("  workers      {workers} x {} slots", c.worker.concurrency);
    if services.simulator {
        println!(
            "  simulator    {} events/s to {} (topic {})",
            c.simulate.rate, c.kafka.brokers, c.kafka.topic
        );
    }
    if services.lander {
        println!("  lander       {} -> {}", c.kafka.brokers, c.store.url);
    }
    if services.web {
        super::web::announce(&app)?;
    }
    println!("  try          setlist dags list; setlist dags trigger <dag>; setlist runs list");
    app.run(services, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
