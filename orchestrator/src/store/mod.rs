//! The PostgreSQL state store. SQL sits beside the code that runs it; long queries
//! live in `queries/*.sql`.

pub mod alerts;
pub mod cancel;
pub mod dags;
pub mod datasets;
pub mod logs;
pub mod mapped;
pub mod pools;
pub mod runs;
pub mod transitions;
pub mod workers;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};

use crate::error::Result;

/// The schema migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Channel workers LISTEN on: new work is queued, or a retry is due.
pub const WORK_CHANNEL: &str = "setlist_work";
/// Channel workers LISTEN on: payload is the id of a task instance to cancel.
pub const CANCEL_CHANNEL: &str = "setlist_cancel";
/// Channel the scheduler LISTENs on: a run was created or ended.
pub const SCHEDULER_CHANNEL: &str = "setlist_scheduler";
/// Channel alert senders LISTEN on: an alert is due.
pub const ALERTS_CHANNEL: &str = "setlist_alerts";

/// Connects to the state store at `url`.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    Ok(pool)
}

/// Applies pending migrations; safe to call from several processes at once.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Sends `payload` on `channel`; delivered when the surrounding transaction commits.
pub(crate) async fn notify(conn: &mut PgConnection, channel: &str, payload: &str) -> Result<()> {
    sqlx::query!("SELECT 1 AS sent FROM pg_notify($1, $2)", channel, payload)
        .fetch_one(conn)
        .await?;
    Ok(())
}
