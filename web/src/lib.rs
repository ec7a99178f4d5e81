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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use orchestrator::{Dag, DagBag};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use auth::Token;
use error::ApiError;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where the server listens.
    pub bind: SocketAddr,
    /// The bearer token every mutation (and, unless `public_reads`, every read) needs.
    pub token: Token,
    /// Reads (GET) need no token: for a server only trusted people can reach.
    pub public_reads: bool,
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
    /// How the server runs.
    pub config: Arc<WebConfig>,
    /// The DAGs read from the store, by id, with the digest of the definition read.
    dag_cache: Arc<Mutex<DagCache>>,
}

/// DAG id -> (the definition's digest, the DAG).
type DagCache = HashMap<String, (String, Arc<Dag>)>;

impl AppState {
    /// The state every handler gets.
    pub fn new(pool: PgPool, warehouse: PgPool, config: WebConfig) -> Self {
        Self {
            pool,
            warehouse,
            config: Arc::new(config),
            dag_cache: Arc::default(),
        }
    }

    /// The DAGs as the scheduler last parsed them, and the problems of the files that
    /// did not load. The web server never reads the DAG folder: one folder, one parser.
    /// A request asks the store for the ids and digests only; a definition is read and
    /// parsed again only when its digest changed.
    pub async fn dags(&self) -> Result<DagBag, ApiError> {
        use orchestrator::store::dags;
        let (index, errors) = dags::index(&self.pool).await?;
        let stale: Vec<&(String, String)> = {
            let cache = self.dag_cache.lock().unwrap_or_else(|e| e.into_inner());
            index
                .iter()
                .filter(|(id, hash)| cache.get(id).is_none_or(|(seen, _)| seen != hash))
                .collect()
        };
        let mut fresh = Vec::new();
        let mut errors = errors;
        for (id, hash) in stale {
            match dags::active(&self.pool, id).await {
                Ok(Some(dag)) => fresh.push((id.clone(), hash.clone(), dag)),
                Ok(None) => {}
                // A definition this version cannot read is a problem to show, not a 500.
                Err(orchestrator::Error::Invalid(message)) => {
                    errors.push(orchestrator::Diagnostic {
                        file: format!("DAG {id}").into(),
                        line: 1,
                        column: 1,
                        message,
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut cache = self.dag_cache.lock().unwrap_or_else(|e| e.into_inner());
        for (id, hash, dag) in fresh {
            cache.insert(id, (hash, Arc::new(dag)));
        }
        cache.retain(|id, _| index.iter().any(|(i, _)| i == id));
        let dags = index
            .iter()
            .filter_map(|(id, _)| cache.get(id).map(|(_, d)| Dag::clone(d)))
            .collect();
        Ok(DagBag {
            dags,
            errors,
            unreadable: false,
        })
    }

    /// The active DAG named `dag_id`, or a 404 that says so.
    pub async fn dag(&self, dag_id: &str) -> Result<Dag, ApiError> {
        orchestrator::store::dags::active(&self.pool, dag_id)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "dag_not_found",
                    format!(
                        "no DAG `{dag_id}` is loaded (see the DAGs page for files that do not load)"
                    ),
                )
            })
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
