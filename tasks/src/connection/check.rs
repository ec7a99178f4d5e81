//! `setlist connections test NAME`: reaches the thing a connection names, for real,
//! and says what answered or what failed.

use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::io::AsyncBufReadExt;

use super::{Connection, ConnectionKind};
use crate::bronze::snowflake::{Snowflake, SnowflakeConfig};
use crate::storage::Storage;

/// How long one check may take before it counts as unreachable.
const PATIENCE: Duration = Duration::from_secs(10);

/// Connects with `connection` and does the least that proves it works: a query, a
/// request, a listing, a metadata fetch, a greeting. `bucket` is the bucket an `s3`
/// connection lists when its URL names none (the store's). Returns what answered.
pub async fn check(connection: &Connection, bucket: Option<&str>) -> anyhow::Result<String> {
    tokio::time::timeout(PATIENCE, reach(connection, bucket))
        .await
        .with_context(|| {
            format!(
                "{} did not answer within {}s",
                connection.shown(),
                PATIENCE.as_secs()
            )
        })?
}

async fn reach(connection: &Connection, bucket: Option<&str>) -> anyhow::Result<String> {
    let shown = connection.shown();
    match connection.kind {
        ConnectionKind::Postgres => {
            use sqlx::Connection as _;
            // One connection, no pool: a refused port fails at once, not after retries.
            let url = connection.postgres_url();
            let mut conn = sqlx::PgConnection::connect(url.expose())
                .await
                .with_context(|| format!("cannot connect to {shown}"))?;
            let version: String = sqlx::query_scalar("SELECT version()")
                .fetch_one(&mut conn)
                .await
                .with_context(|| format!("{shown} refused a query"))?;
            Ok(format!("connected: {version}"))
        }
        ConnectionKind::Snowflake => {
            let config = SnowflakeConfig::from_connection(connection, None)?;
            let account = config.account.clone();
            let snowflake = Snowflake::connect(config).await?;
            snowflake
                .query("SELECT 1")
                .await
                .with_context(|| format!("Snowflake account {account} refused a query"))?;
            Ok(format!(
                "logged in to Snowflake account {account} and ran a query"
            ))
        }
        ConnectionKind::Http | ConnectionKind::Webhook => {
            let url = connection.http_url();
            let answer = reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()?
                .get(&url)
                .send()
                .await
                // reqwest's error names the URL, whose path may be a webhook's secret.
                .map_err(|e| e.without_url())
                .with_context(|| format!("no answer from {shown}"))?;
            let status = answer.status();
            if status.is_server_error() {
                bail!("{shown} answered {status}");
            }
            Ok(format!(
                "{shown} answered {status}{}",
                unchecked(connection)
            ))
        }
        ConnectionKind::S3 => {
            let bucket = connection
                .param("bucket")
                .or(bucket.map(String::from))
                .context("say which bucket to list: ?bucket=NAME in the URL, or use the store's connection")?;
            let options = connection.s3_options();
            let options: Vec<(&str, &str)> = options
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let storage = Storage::open_with(&format!("s3://{bucket}"), &options)?;
            let listed = storage
                .store
                .list_with_delimiter(None)
                .await
                .with_context(|| format!("cannot list bucket {bucket} at {shown}"))?;
            Ok(format!(
                "listed bucket {bucket}: {} prefixes and {} objects at its top",
                listed.common_prefixes.len(),
                listed.objects.len()
            ))
        }
        ConnectionKind::Kafka => {
            let brokers = connection.brokers();
            let metadata = tokio::task::spawn_blocking(move || {
                let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .create()
                    .context("cannot configure a Kafka client")?;
                consumer
                    .fetch_metadata(None, PATIENCE)
                    .with_context(|| format!("no metadata from {brokers}"))
            })
            .await??;
            Ok(format!(
                "{} broker(s), {} topic(s){}",
                metadata.brokers().len(),
                metadata.topics().len(),
                unchecked(connection)
            ))
        }
        ConnectionKind::Smtp => {
            let host = connection.host().unwrap_or_default();
            let port = connection
                .url
                .port()
                .unwrap_or(if connection.url.scheme() == "smtps" {
                    465
                } else {
                    25
                });
            let stream = tokio::net::TcpStream::connect((host, port))
                .await
                .with_context(|| format!("cannot connect to {host}:{port}"))?;
            if connection.url.scheme() == "smtps" {
                // The greeting comes after TLS; a listening port is as far as this goes.
                return Ok(format!(
                    "{host}:{port} accepts connections{}",
                    unchecked(connection)
                ));
            }
            let mut greeting = String::new();
            tokio::io::BufReader::new(stream)
                .read_line(&mut greeting)
                .await
                .with_context(|| format!("{host}:{port} sent no greeting"))?;
            if !greeting.starts_with("220") {
                bail!(
                    "{host}:{port} greeted with {:?}, not 220",
                    greeting.trim_end()
                );
            }
            Ok(format!(
                "{host}:{port} greeted: {}{}",
                greeting.trim_end(),
                unchecked(connection)
            ))
        }
    }
}

/// What a check that only reaches the server leaves unsaid: whether it takes the
/// connection's user and password (logging in is the task kind's own business).
fn unchecked(connection: &Connection) -> &'static str {
    if connection.login().is_some() || connection.password().is_some() {
        " (reached; its user and password were not checked)"
    } else {
        ""
    }
}
