//! Sends the alerts the engine writes (`on_failure`, `on_success`, `on_retry` of a DAG
//! or a task) through their notify connections: the DAG, the run and its link, the
//! task and its error, and the last lines of its log. Any number of senders may run
//! (each scheduler process runs one); each alert is claimed by one. A failed send is
//! tried again with backoff up to `store::alerts::MAX_TRIES` times and never touches
//! the run.

use std::sync::Arc;
use std::time::Duration;

use orchestrator::Fatal;
use orchestrator::store::ALERTS_CHANNEL;
use orchestrator::store::alerts::{self, Due};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::notify::{Message, deliver};
use crate::settings::Settings;

/// How many log lines an alert about a task carries.
const LOG_LINES: i64 = 10;

/// Sends due alerts.
#[derive(Clone)]
pub struct Sender {
    pool: PgPool,
    settings: Arc<Settings>,
    /// Where people open the pages (`web.public_url`), for links; none: no links.
    base_url: Option<String>,
}

impl Sender {
    /// A sender over the state store `pool`, with the configuration's connections.
    pub fn new(pool: PgPool, settings: Arc<Settings>, base_url: Option<String>) -> Self {
        Self {
            pool,
            settings,
            base_url: base_url.map(|u| u.trim_end_matches('/').to_string()),
        }
    }

    /// Sends every alert due now; returns how many were sent.
    pub async fn send_due(&self) -> anyhow::Result<usize> {
        let mut sent = 0;
        loop {
            // One at a time: a slow channel never holds others' claims past their lease.
            let due = alerts::claim_due(&self.pool, 1).await?;
            if due.is_empty() {
                return Ok(sent);
            }
            for alert in due {
                match self.send(&alert).await {
                    Ok(()) => {
                        alerts::sent(&self.pool, alert.id).await?;
                        sent += 1;
                    }
                    Err(e) => {
                        let fatal = e.downcast_ref::<Fatal>().is_some();
                        tracing::warn!(alert = alert.id, connection = %alert.connection, tries = alert.tries, error = %format!("{e:#}"), "An alert could not be sent.");
                        // A refusal will not change: no more tries.
                        let retry_in = (!fatal).then(|| {
                            Duration::from_secs(10 * 2u64.pow(alert.tries.clamp(1, 10) as u32 - 1))
                        });
                        alerts::failed(&self.pool, alert.id, &format!("{e:#}"), retry_in).await?;
                    }
                }
            }
        }
    }

    async fn send(&self, alert: &Due) -> anyhow::Result<()> {
        let connection = self.settings.connections.named(&alert.connection)?;
        let lines = match alert.task_id.as_deref().or(alert.failed_task.as_deref()) {
            Some(task) if alert.event != "success" => {
                alerts::last_lines(
                    &self.pool,
                    alert.run_id,
                    task,
                    alert.try_number.filter(|_| alert.task_id.is_some()),
                    LOG_LINES,
                )
                .await?
            }
            _ => Vec::new(),
        };
        deliver(connection, &self.message(alert, &lines)).await?;
        Ok(())
    }

    /// What an alert says.
    pub fn message(&self, alert: &Due, lines: &[String]) -> Message {
        let what = match alert.event.as_str() {
            "failure" => "failed",
            "success" => "succeeded",
            _ => "failed and will be retried",
        };
        let subject = match &alert.task_id {
            Some(task) => format!(
                "[setlist] {}: task {task} {what} (run {})",
                alert.dag_id, alert.run_id
            ),
            None => format!("[setlist] {}: run {} {what}", alert.dag_id, alert.run_id),
        };
        let mut text = format!(
            "{subject}\nlogical date {}",
            alert.logical_date.to_rfc3339()
        );
        if let Some(base) = &self.base_url {
            text += &format!("\n{base}/runs/{}", alert.run_id);
            if let Some(task) = alert.task_id.as_deref().or(alert.failed_task.as_deref()) {
                text += &format!(" (task: {base}/runs/{}/tasks/{task})", alert.run_id);
            }
        }
        if alert.event != "success"
            && let (Some(task), Some(error)) =
                (alert.failed_task.as_deref(), alert.error.as_deref())
        {
            text += &format!("\n{task}: {error}");
        }
        if !lines.is_empty() {
            text += &format!("\nlast log lines:\n{}", lines.join("\n"));
        }
        Message {
            text,
            subject,
            ..Message::default()
        }
    }

    /// Sends alerts as they come due until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(ALERTS_CHANNEL).await?;
        loop {
            self.send_due().await?;
            let idle = match alerts::next_due(&self.pool).await? {
                Some(at) => (at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .clamp(Duration::from_millis(50), Duration::from_secs(60)),
                None => Duration::from_secs(60),
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                n = listener.recv() => { n?; }
                _ = tokio::time::sleep(idle) => {}
            }
        }
    }
}
