//! The `App`: one [`Config`], the state store's pool and the task kinds, and the
//! services the config turns on, each supervised: a service that fails is restarted
//! with backoff while the others go on, until shutdown (the web server, whose failure
//! is a port already taken, stops them instead).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use orchestrator::scheduler::{Scheduler, SchedulerConfig};
use orchestrator::worker::{Worker, WorkerConfig};
use orchestrator::{Registry, Resources, Secret, store};
use sqlx::PgPool;
use tasks::land::{Land, Lander};
use tasks::settings::Settings;
use tasks::simulate::{Simulate, produce};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::supervise::supervise;

/// Which services to run in this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Services {
    /// The scheduler.
    pub scheduler: bool,
    /// This many workers.
    pub workers: usize,
    /// The simulator (at `simulate.rate`).
    pub simulator: bool,
    /// The lander.
    pub lander: bool,
    /// The web server (at `web.bind`).
    pub web: bool,
}

/// Every task kind of this build, checking the connections DAG files name against
/// the ones `config` defines.
pub fn registry(config: &Config) -> Registry {
    tasks::registry()
        .with_connections(config.resolved.iter().map(|c| c.name.clone()))
        .with_pools(config.pools.clone())
}

/// A configured Setlist: the state store it talks to and what its tasks can do.
pub struct App {
    /// The configuration, read once.
    pub config: Config,
    /// The state store.
    pub pool: PgPool,
    /// Every task kind of this build.
    pub registry: Arc<Registry>,
}

impl App {
    /// Connects to the state store with room for `max_connections` and applies
    /// pending migrations.
    pub async fn connect(config: Config, max_connections: u32) -> anyhow::Result<Self> {
        let url = &config.database_url;
        let pool = store::connect(url.expose(), max_connections)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach the state store at {url}: {e}\n(start PostgreSQL with `scripts/postgres.sh`, or set database_url / DATABASE_URL)"
                )
            })?;
        store::migrate(&pool).await?;
        Ok(Self {
            registry: Arc::new(registry(&config)),
            config,
            pool,
        })
    }

    /// What every attempt of this process is handed: the task kinds' settings and the
    /// shared state-store pool.
    pub fn resources(&self) -> Resources {
        let c = &self.config;
        Resources::new().with(Settings::new(
            c.kafka.clone(),
            c.store.clone(),
            c.warehouse.clone(),
            c.dbt.clone(),
            c.resolved.clone(),
            c.database_url.clone(),
            self.pool.clone(),
        ))
    }

    /// The scheduler's settings.
    pub fn scheduler_config(&self) -> SchedulerConfig {
        let s = &self.config.scheduler;
        SchedulerConfig {
            worker_timeout: s.worker_timeout,
            housekeeping_interval: s.housekeeping_interval,
            reload_interval: s.reload_interval,
            ..SchedulerConfig::new(&self.config.dags_dir)
        }
    }

    /// A worker's settings.
    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.config.worker.concurrency,
            heartbeat_interval: self.config.worker.heartbeat_interval,
            queues: self.config.worker.queues.clone(),
            resources: self.resources(),
            ..WorkerConfig::default()
        }
    }

    /// The lander's settings.
    pub fn lander_config(&self) -> anyhow::Result<Land> {
        let c = &self.config;
        Ok(Land {
            kafka: c.kafka.clone(),
            max_age: c.land.max_age,
            store_options: c.store.options(&c.resolved)?,
            ..Land::new(c.store.url.clone())
        })
    }

    /// Runs `services` until `shutdown`, each restarted with backoff when it fails (the web
    /// server stops the others instead: a taken port is no failure to retry).
    pub async fn run(&self, services: Services, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut running = JoinSet::new();
        if services.scheduler {
            // The pools say what the configuration says.
            store::pools::sync(&self.pool, &self.config.pools).await?;
            let (pool, registry, config) = (
                self.pool.clone(),
                self.registry.clone(),
                self.scheduler_config(),
            );
            running.spawn(supervise("scheduler", shutdown.clone(), {
                let shutdown = shutdown.clone();
                move || {
                    let scheduler = Scheduler::new(pool.clone(), registry.clone(), config.clone());
                    scheduler.run(shutdown.clone())
                }
            }));
        }
        if services.scheduler {
            // Alerts go out from where runs are decided; several senders share the work.
            let settings = self
                .resources()
                .get::<Settings>()
                .expect("the resources hold the settings");
            let web = &self.config.web;
            let base = web
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", web.bind));
            let sender = tasks::alerts::Sender::new(self.pool.clone(), settings, Some(base));
            running.spawn(supervise("alerts", shutdown.clone(), {
                let shutdown = shutdown.clone();
                move || sender.clone().run(shutdown.clone())
            }));
        }
        for _ in 0..services.workers {
            let worker = Arc::new(
                Worker::register(
                    self.pool.clone(),
                    self.registry.clone(),
                    self.worker_config(),
                )
                .await?,
            );
            running.spawn(supervise("worker", shutdown.clone(), {
                let shutdown = shutdown.clone();
                move || Arc::clone(&worker).run(shutdown.clone())
            }));
        }
        if services.simulator && self.config.simulate.rate > 0.0 {
            let config = Simulate {
                kafka: self.config.kafka.clone(),
                rate: Some(self.config.simulate.rate),
                ..Simulate::default()
            };
            running.spawn(supervise("simulator", shutdown.clone(), {
                let shutdown = shutdown.clone();
                move || {
                    let (config, token) = (config.clone(), shutdown.clone());
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
                }
            }));
        }
        if services.lander {
            let (config, pool) = (self.lander_config()?, self.pool.clone());
            running.spawn(supervise("lander", shutdown.clone(), {
                let shutdown = shutdown.clone();
                move || {
                    let (config, token, pool) = (config.clone(), shutdown.clone(), pool.clone());
                    async move { Lander::new(config, pool)?.run(token).await.map(|_| ()) }
                }
            }));
        }
        if services.web {
            // Not restarted: a port already taken is an error to stop on, not to retry,
            // and axum does not fail once it listens.
            let state = self.web_state()?;
            running.spawn(setlist_web::serve(state, shutdown.clone()));
        }
        let mut result = Ok(());
        while let Some(done) = running.join_next().await {
            if let Err(e) = done.map_err(anyhow::Error::from).and_then(|r| r) {
                tracing::error!(error = %format!("{e:#}"), "A service stopped; stopping the others.");
                shutdown.cancel();
                result = Err(e);
            }
        }
        result
    }

    /// The web server's state: the state store, a pool on the warehouse for the
    /// dashboards, the token and the settings.
    pub fn web_state(&self) -> anyhow::Result<setlist_web::AppState> {
        let c = &self.config;
        let config = setlist_web::WebConfig {
            bind: c.web.bind,
            token: self.api_token()?.token,
            public_reads: c.web.public_reads,
            kafka: c.kafka.clone(),
        };
        let url = c.warehouse.url.as_ref().unwrap_or(&c.database_url);
        // The dashboard's queries run side by side, each a short aggregate: enough
        // memory to hash them instead of sorting on disk, and no JIT to compile them.
        let warehouse = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, "SET work_mem = '64MB'; SET jit = off")
                        .await?;
                    Ok(())
                })
            })
            .connect_lazy(url.expose())
            .with_context(|| format!("warehouse.url {url} is not a PostgreSQL URL"))?;
        Ok(setlist_web::AppState::new(
            self.pool.clone(),
            warehouse,
            config,
        ))
    }

    /// The API token: `web.api_token`, else one made once and kept (mode 0600) in
    /// `.setlist/api-token`.
    pub fn api_token(&self) -> anyhow::Result<ApiToken> {
        if let Some(secret) = &self.config.web.api_token
            && !secret.is_empty()
        {
            return Ok(ApiToken::new(secret.clone(), None));
        }
        let path = std::path::PathBuf::from(".setlist/api-token");
        if let Ok(secret) = std::fs::read_to_string(&path) {
            return Ok(ApiToken::new(Secret::new(secret.trim()), Some(path)));
        }
        std::fs::create_dir_all(".setlist")?;
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        std::io::Write::write_all(&mut file.open(&path)?, secret.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(ApiToken::new(Secret::new(secret), Some(path)))
    }
}

/// The API token and where it is kept.
pub struct ApiToken {
    /// What the server compares requests with.
    pub token: setlist_web::Token,
    /// The token itself, to print for a local login.
    pub secret: Secret,
    /// The file it is kept in, when Setlist made it.
    pub file: Option<std::path::PathBuf>,
}

impl ApiToken {
    fn new(secret: Secret, file: Option<std::path::PathBuf>) -> Self {
        Self {
            token: setlist_web::Token::new(secret.expose()),
            secret,
            file,
        }
    }
}
