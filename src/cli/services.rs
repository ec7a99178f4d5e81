//! The long-running services: scheduler, worker, standalone.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use orchestrator::scheduler::{Scheduler, SchedulerConfig};
use orchestrator::worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use super::supervise::supervise;
use super::{Ctx, parse_duration};
use tasks::kafka::KafkaConfig;
use tasks::land::{Land, Lander};
use tasks::simulate::{Simulate, produce};

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Give up on a worker silent for this long and retry its work.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    worker_timeout: Duration,
    /// How often to reap lost workers and sweep finished runs.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    housekeeping_interval: Duration,
    /// How often to re-read the DAG folder.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    reload_interval: Duration,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Task instances this worker runs at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
}

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    #[command(flatten)]
    scheduler: SchedulerArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    /// Workers in this process.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Also run the simulator at this many events per second (0: no simulator).
    #[arg(long, default_value_t = 0.0)]
    simulate_rate: f64,
    /// Also run the lander.
    #[arg(long)]
    land: bool,
    /// The lander writes a partition's open batch once it is this old (freshness
    /// against object count).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    land_max_age: Duration,
    /// Kafka bootstrap servers for the simulator and the lander.
    #[arg(long, env = "SETLIST_KAFKA_BROKERS", default_value = "127.0.0.1:19092")]
    brokers: String,
    /// The topic of play events.
    #[arg(long, default_value = "plays")]
    topic: String,
    /// Also serve the web UI and REST API here, e.g. 127.0.0.1:8080.
    #[arg(long)]
    web: Option<std::net::SocketAddr>,
    /// With --web: serve reads (GET) without the API token.
    #[arg(long)]
    public_reads: bool,
    /// Where the lander writes: a folder, file:///dir, or s3://bucket[/prefix].
    #[arg(long, env = "SETLIST_STORE_URL", default_value = ".setlist/lake")]
    store_url: String,
}

impl SchedulerArgs {
    fn config(&self, ctx: &Ctx) -> SchedulerConfig {
        SchedulerConfig {
            worker_timeout: self.worker_timeout,
            housekeeping_interval: self.housekeeping_interval,
            reload_interval: self.reload_interval,
            ..SchedulerConfig::new(&ctx.dags_dir)
        }
    }
}

impl WorkerArgs {
    fn config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.concurrency.max(1),
            heartbeat_interval: self.heartbeat_interval,
            ..WorkerConfig::default()
        }
    }
}

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("Shutting down.");
        t.cancel();
    });
    token
}

pub async fn scheduler(ctx: &Ctx, args: SchedulerArgs) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool(4).await?;
    let scheduler = Scheduler::new(pool, ctx.registry.clone(), args.config(ctx));
    scheduler.run(shutdown_on_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn worker(ctx: &Ctx, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let config = args.config();
    let pool = ctx.pool(config.concurrency as u32 + 4).await?;
    let worker = Arc::new(Worker::register(pool, ctx.registry.clone(), config).await?);
    worker.run(shutdown_on_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn standalone(ctx: &Ctx, args: StandaloneArgs) -> anyhow::Result<ExitCode> {
    let worker_config = args.worker.config();
    let workers = args.workers.max(1);
    let pool = ctx
        .pool((worker_config.concurrency * workers) as u32 + 6)
        .await?;
    let shutdown = shutdown_on_signal();
    let scheduler = Scheduler::new(
        pool.clone(),
        ctx.registry.clone(),
        args.scheduler.config(ctx),
    );
    let mut services = tokio::task::JoinSet::new();
    services.spawn(scheduler.run(shutdown.clone()));
    for _ in 0..workers {
        let w = Arc::new(
            Worker::register(pool.clone(), ctx.registry.clone(), worker_config.clone()).await?,
        );
        services.spawn(w.run(shutdown.clone()));
    }
    let kafka = KafkaConfig {
        brokers: args.brokers.clone(),
        topic: args.topic.clone(),
        ..KafkaConfig::default()
    };
    if args.simulate_rate > 0.0 {
        let config = Simulate {
            kafka: kafka.clone(),
            rate: Some(args.simulate_rate),
            ..Simulate::default()
        };
        let token = shutdown.clone();
        services.spawn(supervise("simulator", shutdown.clone(), move || {
            let (config, token) = (config.clone(), token.clone());
            async move {
                produce(&config, token, Duration::from_secs(30), |s, rate| {
                    tracing::info!(
                        produced = s.produced,
                        rate = format!("{rate:.0}/s"),
                        failed = s.failed,
                        "Simulating."
                    );
                })
                .await
                .map(|_| ())
            }
        }));
    }
    if args.land {
        let config = Land {
            kafka,
            max_age: args.land_max_age,
            ..Land::new(args.store_url.clone())
        };
        let (token, pool) = (shutdown.clone(), pool.clone());
        services.spawn(supervise("lander", shutdown.clone(), move || {
            let (config, token, pool) = (config.clone(), token.clone(), pool.clone());
            async move { Lander::new(config, pool)?.run(token).await.map(|_| ()) }
        }));
    }
    let web = match args.web {
        Some(bind) => {
            let web_args = super::web::WebArgs {
                bind,
                public_reads: args.public_reads,
            };
            let (state, token_file) = super::web::state(ctx, pool.clone(), &web_args)?;
            services.spawn(setlist_web::serve(state, shutdown.clone()));
            Some((web_args, token_file))
        }
        None => None,
    };
    println!("Setlist standalone is running (Ctrl-C stops it):");
    println!("  state store  {}", super::redact(&ctx.database_url));
    println!("  DAG folder   {}", ctx.dags_dir.display());
    println!("  scheduler    1");
    println!(
        "  workers      {workers} x {} slots",
        worker_config.concurrency
    );
    if args.simulate_rate > 0.0 {
        println!(
            "  simulator    {} events/s to {} (topic {})",
            args.simulate_rate, args.brokers, args.topic
        );
    }
    if args.land {
        println!("  lander       {} -> {}", args.brokers, args.store_url);
    }
    if let Some((web_args, token_file)) = &web {
        super::web::announce(web_args, token_file.as_ref());
    }
    println!("  try          setlist dags list; setlist dags trigger <dag>; setlist runs list");
    let mut result = Ok(ExitCode::SUCCESS);
    while let Some(done) = services.join_next().await {
        if let Err(e) = done.map_err(anyhow::Error::from).and_then(|r| r) {
            tracing::error!(error = %e, "A service failed; stopping the others.");
            shutdown.cancel();
            result = Err(e);
        }
    }
    result
}
