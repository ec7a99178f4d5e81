//! Setlist's web server. Today: the REST API under `/api/v1` and `/healthz`; the
//! pages (DAGs, grid, runs, logs, pipeline health, analytics) build on it.
//!
//! Every mutation needs the bearer token; reads need it too unless the server is
//! told reads are public. The server binds 127.0.0.1 unless told otherwise.

mod api;
mod auth;
mod metrics;
mod pages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use orchestrator::Registry;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use auth::Token;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub bind: SocketAddr,
    /// The bearer token every mutation (and, unless `public_reads`, every read) needs.
    pub token: Token,
    pub public_reads: bool,
    pub dags_dir: PathBuf,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The state store.
    pub pool: PgPool,
    /// The warehouse whose gold the analytics page reads (PostgreSQL).
    pub warehouse: PgPool,
    pub registry: Arc<Registry>,
    pub config: Arc<WebConfig>,
}

impl AppState {
    /// The DAG folder as it is now: every DAG that loads, and the problems of the rest.
    pub fn dags(&self) -> orchestrator::DagBag {
        orchestrator::dag::load_dir(&self.config.dags_dir, &self.registry)
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
