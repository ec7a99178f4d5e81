//! Setlist's web server: the server-rendered pages (DAGs, graph, grid, runs, logs,
//! pipeline health, analytics), the REST API under `/api/v1`, `/healthz` and
//! `/metrics`.
//!
//! Every mutation needs the bearer token; reads need it too unless the server is
//! told reads are public. The server binds 127.0.0.1 unless told otherwise.

#![warn(missing_docs)]

mod api;
mod auth;
mod error;
mod metrics;
mod pages;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use orchestrator::{DagBag, Registry};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use auth::Token;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where the server listens.
    pub bind: SocketAddr,
    /// The bearer token every mutation (and, unless `public_reads`, every read) needs.
    pub token: Token,
    /// Reads (GET) need no token: for a server only trusted people can reach.
    pub public_reads: bool,
    /// The DAG folder the pages and the API list DAGs from.
    pub dags_dir: PathBuf,
    /// The broker and topic the health page reads offsets from.
    pub kafka: tasks::kafka::KafkaConfig,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The state store.
    pub pool: PgPool,
    /// The warehouse whose gold the analytics page reads (PostgreSQL).
    pub warehouse: PgPool,
    /// The task kinds, to validate the DAG folder with.
    pub registry: Arc<Registry>,
    /// How the server runs.
    pub config: Arc<WebConfig>,
    /// The DAG folder as last loaded, with the fingerprint of its files then.
    dag_cache: Arc<Mutex<Option<LoadedDags>>>,
}

/// The DAG folder's files when it was loaded, and what loaded.
type LoadedDags = (Fingerprint, Arc<DagBag>);

/// Each `.toml` file of the DAG folder with its size and modification time.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut files: Fingerprint = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.path(), meta.len(), meta.modified().ok()))
        })
        .collect();
    files.sort();
    files
}

impl AppState {
    /// The state every handler gets.
    pub fn new(
        pool: PgPool,
        warehouse: PgPool,
        registry: Arc<Registry>,
        config: WebConfig,
    ) -> Self {
        Self {
            pool,
            warehouse,
            registry,
            config: Arc::new(config),
            dag_cache: Arc::default(),
        }
    }

    /// The DAG folder as it is now: every DAG that loads, and the problems of the
    /// rest. Parsed again only when a file was added, removed or changed, so a
    /// request costs a directory listing, not a parse of every DAG.
    pub fn dags(&self) -> Arc<DagBag> {
        let now = fingerprint(&self.config.dags_dir);
        let mut cache = self.dag_cache.lock().unwrap_or_else(|e| e.into_inner());
        match &*cache {
            Some((seen, bag)) if *seen == now => bag.clone(),
            _ => {
                let bag = Arc::new(orchestrator::dag::load_dir(
                    &self.config.dags_dir,
                    &self.registry,
                ));
                *cache = Some((now, bag.clone()));
                bag
            }
        }
    }
}

/// Whether a warehouse query failed because its schema or table does not exist yet
/// (the pipeline has not built gold).
pub(crate) fn missing_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("42P01" | "3F000")))
}

/// The whole application: API and health check.
pub fn router(state: AppState) -> Router {
    api::router(state.clone())
        .merge(pages::router(state.clone()))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let bind = state.config.bind;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    tracing::info!(%bind, "Web server listening.");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
