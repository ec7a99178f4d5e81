//! `notify`: sends a message to a `webhook` connection (Slack-compatible JSON:
//! `{"text": message}`, or a `payload` of your own) or by email through an `smtp`
//! connection, as Airflow's SlackWebhookOperator and EmailOperator do. Templates make
//! the message: `"{{ dag_id }} run {{ run_id }} loaded {{ upstream.load.output.rows }} rows"`.
//! A webhook's 5xx or no answer fails the attempt (retried by the task's policy); a
//! 4xx fails it at once.

mod email;

use async_trait::async_trait;
use orchestrator::{Fatal, ParamError, Task, TaskConfig, TaskContext};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connection::{Connection, ConnectionKind};
use crate::settings::Settings;

/// The params of a `notify` task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// A `webhook` or `smtp` connection.
    pub connection: String,
    /// The text.
    pub message: String,
    /// An email's subject (default: the DAG, run and task).
    #[serde(default)]
    pub subject: Option<String>,
    /// An email's recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// An email's sender (default: the connection's `from` option, else its user).
    #[serde(default)]
    pub from: Option<String>,
    /// A webhook's whole JSON body instead of `{"text": message}` (Slack blocks, a
    /// Teams card).
    #[serde(default)]
    pub payload: Option<Value>,
}

impl TaskConfig for Notify {
    fn validate(&self) -> Result<(), ParamError> {
        if self.message.trim().is_empty() && self.payload.is_none() {
            return Err(ParamError::at("message", "must not be empty"));
        }
        Ok(())
    }

    fn connections(&self) -> Vec<(&'static str, String)> {
        vec![("connection", self.connection.clone())]
    }
}

#[async_trait]
impl Task for Notify {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        let settings = Settings::of(ctx);
        let connection = settings.connections.named(&self.connection)?;
        if connection.kind == ConnectionKind::Webhook
            && (!self.to.is_empty() || self.subject.is_some() || self.from.is_some())
        {
            return Err(Fatal(
                "`to`, `subject` and `from` are for an smtp connection, not a webhook".into(),
            )
            .into());
        }
        let message = Message {
            text: self.message.clone(),
            subject: self.subject.clone().unwrap_or_else(|| {
                format!(
                    "Setlist: {} run {} ({})",
                    ctx.dag_id, ctx.run_id, ctx.task_id
                )
            }),
            to: self.to.clone(),
            from: self.from.clone(),
            payload: self.payload.clone(),
        };
        let sent = deliver(connection, &message).await?;
        ctx.log
            .info(format!("Sent through {}: {sent}", connection.shown()));
        Ok(sent)
    }
}

/// A message for a webhook or a mail server.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// The text.
    pub text: String,
    /// An email's subject.
    pub subject: String,
    /// An email's recipients (default: the connection's `to` option, comma-separated).
    pub to: Vec<String>,
    /// An email's sender (default: the connection's `from` option, else its user).
    pub from: Option<String>,
    /// A webhook's whole body instead of `{"text": text}`.
    pub payload: Option<Value>,
}

/// Sends `message` through a `webhook` or `smtp` connection and says what was sent. A
/// webhook's 4xx, a missing recipient or a malformed address is [`Fatal`]: sending
/// again would not help; a 5xx or no answer is worth another try.
pub async fn deliver(connection: &Connection, message: &Message) -> anyhow::Result<Value> {
    match connection.kind {
        ConnectionKind::Webhook => post(connection, message).await,
        ConnectionKind::Smtp => {
            let to = if message.to.is_empty() {
                connection
                    .param("to")
                    .map(|t| t.split(',').map(|a| a.trim().to_string()).collect())
                    .unwrap_or_default()
            } else {
                message.to.clone()
            };
            let to = email::send(
                connection,
                message.from.as_deref(),
                &to,
                &message.subject,
                &message.text,
            )
            .await?;
            Ok(json!({ "sent": "email", "to": to, "subject": message.subject }))
        }
        other => Err(Fatal(format!(
            "connection `{}` is a {other} connection; notify sends through webhook or smtp",
            connection.name
        ))
        .into()),
    }
}

async fn post(connection: &Connection, message: &Message) -> anyhow::Result<Value> {
    let body = message
        .payload
        .clone()
        .unwrap_or_else(|| json!({ "text": message.text }));
    let shown = connection.shown();
    let answer = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?
        .post(connection.http_url())
        .json(&body)
        .send()
        .await
        // The URL is the webhook's secret: never in a message.
        .map_err(|e| {
            anyhow::Error::new(e.without_url()).context(format!("no answer from {shown}"))
        })?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    let excerpt: String = text.chars().take(300).collect();
    // A server error, a rate limit (Slack's 429) or a request timeout may pass.
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        anyhow::bail!("{shown} answered {status}: {excerpt}");
    }
    if !status.is_success() {
        return Err(Fatal(format!("{shown} answered {status}: {excerpt}")).into());
    }
    Ok(json!({ "sent": "webhook", "status": status.as_u16() }))
}
