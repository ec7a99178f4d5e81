//! What the task kinds take from Setlist's one configuration when a task's params say
//! nothing: the broker, the object store, the warehouse, dbt and the named connections. The `setlist` binary
//! reads the configuration (file, `SETLIST_*` variables, flags) and hands a
//! [`Settings`] to every attempt through [`TaskContext::resources`]; nothing in this
//! crate reads the environment for them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use orchestrator::{DbUrl, TaskContext};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::bronze::snowflake::SnowflakeConfig;
use crate::connection::{ConnectionKind, Connections};
use crate::kafka::KafkaConfig;
use crate::storage::Storage;

/// Where raw objects live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// A folder, `file:///dir`, or `s3://bucket[/prefix]`.
    pub url: String,
    /// The `s3` connection an s3:// store is reached with (endpoint, region, keys);
    /// absent: the connection named `s3` if there is one, else AWS's own defaults.
    pub connection: Option<String>,
}

impl StoreSettings {
    /// The object-store options of the store's S3 connection: `connection`, else the
    /// connection named `s3` if there is one; none for a folder.
    pub fn options(&self, connections: &Connections) -> anyhow::Result<Vec<(String, String)>> {
        self.options_for(&self.url, connections)
    }

    /// The same for the store at `url` (a task's own `store_url`): S3 options only for
    /// an s3:// one.
    pub fn options_for(
        &self,
        url: &str,
        connections: &Connections,
    ) -> anyhow::Result<Vec<(String, String)>> {
        if !url.starts_with("s3://") {
            return Ok(Vec::new());
        }
        let connection = match &self.connection {
            Some(name) => Some(connections.get(name, ConnectionKind::S3)?),
            None => connections.find("s3", ConnectionKind::S3)?,
        };
        Ok(connection.map(|c| c.s3_options()).unwrap_or_default())
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: ".setlist/lake".into(),
            connection: None,
        }
    }
}

/// The warehouse that bronze, dbt and the dashboards share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarehouseKind {
    /// PostgreSQL (schemas bronze, silver, gold).
    #[default]
    Postgres,
    /// Snowflake, through an external stage on the lake (a `snowflake` connection).
    Snowflake,
}

/// The warehouse section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarehouseSettings {
    /// `postgres` or `snowflake`.
    pub kind: WarehouseKind,
    /// The PostgreSQL warehouse; absent: the state store's database.
    pub url: Option<DbUrl>,
    /// The Snowflake warehouse's connection (default `snowflake`).
    pub connection: Option<String>,
}

/// How the `dbt` kind runs dbt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DbtSettings {
    /// The dbt executable.
    pub binary: PathBuf,
    /// The dbt project folder (and its profiles.yml).
    pub project: PathBuf,
    /// The profile's target; absent: the profile's default (`local`).
    pub target: Option<String>,
}

impl Default for DbtSettings {
    fn default() -> Self {
        Self {
            binary: "dbt".into(),
            project: "dbt".into(),
            target: None,
        }
    }
}

/// Everything the task kinds take from the configuration, and the clients they share.
#[derive(Debug, Default)]
pub struct Settings {
    /// The broker and topic of play events.
    pub kafka: KafkaConfig,
    /// The lake.
    pub store: StoreSettings,
    /// The warehouse.
    pub warehouse: WarehouseSettings,
    /// dbt.
    pub dbt: DbtSettings,
    /// The named connections, their secrets read.
    pub connections: Connections,
    /// The state store's URL (also the warehouse when `warehouse.url` is absent).
    pub state_url: Option<DbUrl>,
    /// The process's state-store pool, shared by every attempt.
    pub state_pool: Option<PgPool>,
    warehouse_pool: OnceCell<PgPool>,
}

impl Settings {
    /// Settings from the configuration's sections and the process's state store.
    pub fn new(
        kafka: KafkaConfig,
        store: StoreSettings,
        warehouse: WarehouseSettings,
        dbt: DbtSettings,
        connections: Connections,
        state_url: DbUrl,
        state_pool: PgPool,
    ) -> Self {
        Self {
            kafka,
            store,
            warehouse,
            dbt,
            connections,
            state_url: Some(state_url),
            state_pool: Some(state_pool),
            warehouse_pool: OnceCell::new(),
        }
    }

    /// The settings handed to this attempt, or the built-in defaults for a task run
    /// outside a Setlist process.
    pub fn of(ctx: &TaskContext) -> Arc<Settings> {
        ctx.resources.get::<Settings>().unwrap_or_default()
    }

    /// The PostgreSQL warehouse's URL: its own, else the state store's.
    pub fn warehouse_url(&self) -> anyhow::Result<&DbUrl> {
        self.warehouse
            .url
            .as_ref()
            .or(self.state_url.as_ref())
            .context("no warehouse: set warehouse.url (SETLIST_WAREHOUSE_URL) or the state store's database_url")
    }

    /// The store at `url` (default `store.url`), reached with `options` when given,
    /// else with the store's connection.
    pub fn storage(
        &self,
        url: Option<&str>,
        options: &[(String, String)],
    ) -> anyhow::Result<Storage> {
        let url = url.unwrap_or(&self.store.url);
        let options = match options.is_empty() {
            true => self.store.options_for(url, &self.connections)?,
            false => options.to_vec(),
        };
        let options: Vec<(&str, &str)> = options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Storage::open_with(url, &options)
    }

    /// The Snowflake warehouse: the connection `name`, else `warehouse.connection`,
    /// else the one named `snowflake`.
    pub fn snowflake(
        &self,
        name: Option<&str>,
        stage_url: Option<String>,
    ) -> anyhow::Result<SnowflakeConfig> {
        let name = name
            .or(self.warehouse.connection.as_deref())
            .unwrap_or("snowflake");
        let connection = self.connections.get(name, ConnectionKind::Snowflake)?;
        SnowflakeConfig::from_connection(connection, stage_url)
    }

    /// The state store: the process's pool, or a new one for `url`.
    pub async fn state(&self) -> anyhow::Result<PgPool> {
        match (&self.state_pool, &self.state_url) {
            (Some(pool), _) => Ok(pool.clone()),
            (None, Some(url)) => PgPool::connect(url.expose())
                .await
                .with_context(|| format!("Failed to connect to the state store at {url}")),
            (None, None) => anyhow::bail!("no state store: set database_url (DATABASE_URL)"),
        }
    }

    /// One pool to the PostgreSQL warehouse, opened at first use and shared by every
    /// attempt of the process (the state store's pool when they are one database).
    pub async fn warehouse_pool(&self) -> anyhow::Result<PgPool> {
        let url = self.warehouse_url()?.clone();
        if self.warehouse.url.is_none()
            && let Some(pool) = &self.state_pool
        {
            return Ok(pool.clone());
        }
        self.warehouse_pool
            .get_or_try_init(|| async move {
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect(url.expose())
                    .await
                    .with_context(|| {
                        format!("Failed to connect to the PostgreSQL warehouse at {url}")
                    })
            })
            .await
            .cloned()
    }
}
