//! The engine's error type, shared by the store, the scheduler and the workers.

use thiserror::Error;

/// What the engine's operations can fail with. The variants map onto HTTP statuses
/// and CLI exit codes at the edges.
#[derive(Debug, Error)]
pub enum Error {
    /// A named thing (DAG, run, task) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the current state (a run for that logical date
    /// exists, the task is running).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is malformed (bad conf JSON, from after to).
    #[error("{0}")]
    Invalid(String),
    /// The state store (PostgreSQL) refused or lost a query.
    #[error("state store: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the state store's schema migrations failed.
    #[error("state store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The engine's result, so callers write `Result<T>` and `?` engine errors through.
pub type Result<T, E = Error> = std::result::Result<T, E>;
