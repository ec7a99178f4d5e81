//! `load_bronze`: loads raw objects the lander wrote into the warehouse's bronze
//! layer, each exactly once. The load manifest records an object in the same
//! transaction as its rows, so a task killed half way leaves nothing behind and its
//! retry loads the object again, once.

pub mod postgres;
pub mod snowflake;

use std::collections::HashSet;

use anyhow::Context;
use arrow_array::RecordBatch;
use async_trait::async_trait;
use orchestrator::{Task, TaskConfig, TaskContext};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::raw::{ledger, read_object};
use crate::settings::Settings;
use crate::storage::Storage;

/// A warehouse the bronze layer can live in.
#[async_trait]
pub trait Warehouse: Send + Sync {
    /// Creates the bronze table and the load manifest if they are missing.
    async fn ensure_bronze(&self) -> anyhow::Result<()>;
    /// Which of `keys` the manifest already holds.
    async fn loaded(&self, keys: &[String]) -> anyhow::Result<HashSet<String>>;
    /// Loads one object's rows and its manifest entry in one transaction. Returns
    /// `None` when the manifest already had it (another loader got there first).
    async fn load(
        &self,
        key: &str,
        load_id: Uuid,
        batches: &[RecordBatch],
    ) -> anyhow::Result<Option<u64>>;
}

/// Params of the `load_bronze` task kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBronze {
    /// Where the raw objects are (default: the `store.url` setting).
    #[serde(default)]
    pub store_url: Option<String>,
    /// S3 settings (object_store's keys) instead of the store's connection.
    #[serde(default)]
    pub store_options: Vec<(String, String)>,
    /// The Snowflake warehouse's connection (default: the `warehouse.connection`
    /// setting, else `snowflake`).
    #[serde(default)]
    pub connection: Option<String>,
    /// `postgres` or `snowflake` (default: the `warehouse.kind` setting).
    #[serde(default)]
    pub warehouse: Option<WarehouseKind>,
    /// The PostgreSQL warehouse (default: the `warehouse.url` setting, else the state
    /// store's database).
    #[serde(default)]
    pub warehouse_url: Option<String>,
    /// The state store holding the lander's ledger (default: the process's own).
    #[serde(default)]
    pub state_url: Option<String>,
    /// The topic whose raw objects to load (default: the `kafka.topic` setting).
    #[serde(default)]
    pub topic: String,
    /// At most this many objects per run; the next run takes the rest.
    #[serde(default = "default_max_objects")]
    pub max_objects: i64,
}

pub use crate::settings::WarehouseKind;

fn default_max_objects() -> i64 {
    10_000
}

impl TaskConfig for LoadBronze {
    fn connections(&self) -> Vec<(&'static str, String)> {
        orchestrator::registry::connection_param(self.connection.as_ref())
    }
}

/// What one run loaded.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LoadReport {
    /// Stamped on every row this run loaded, so a load can be traced or undone.
    pub load_id: Uuid,
    /// Objects loaded by this run.
    pub objects: u64,
    /// Rows those objects added to the bronze table.
    pub rows: u64,
    /// Objects another loader had loaded first.
    pub skipped: u64,
    /// Objects that failed, each with its reason.
    pub failed: Vec<(String, String)>,
}

impl LoadBronze {
    /// Loads every written, not yet loaded object of the topic, oldest first.
    pub async fn run_with(
        &self,
        state: &PgPool,
        warehouse: &dyn Warehouse,
        storage: &Storage,
        log: impl Fn(String),
    ) -> anyhow::Result<LoadReport> {
        warehouse.ensure_bronze().await?;
        let keys = ledger::written_objects(state, &self.topic).await?;
        let done = warehouse.loaded(&keys).await?;
        let mut report = LoadReport {
            load_id: Uuid::new_v4(),
            ..LoadReport::default()
        };
        let todo: Vec<String> = keys
            .into_iter()
            .filter(|k| !done.contains(k))
            .take(self.max_objects as usize)
            .collect();
        // Read and decode the next object while the warehouse copies this one.
        let fetch = |key: String| {
            let storage = storage.clone();
            tokio::spawn(async move { read_object(&storage, &key).await })
        };
        let mut next = todo.first().cloned().map(fetch);
        for (i, key) in todo.iter().enumerate() {
            let current = next.take().expect("one fetch per key");
            next = todo.get(i + 1).cloned().map(fetch);
            let loaded = match current.await? {
                Ok(batches) => warehouse.load(key, report.load_id, &batches).await,
                Err(e) => Err(e),
            };
            match loaded {
                Ok(Some(rows)) => {
                    report.objects += 1;
                    report.rows += rows;
                }
                Ok(None) => report.skipped += 1,
                Err(e) => {
                    log(format!("Failed to load {key}: {e:#}"));
                    report.failed.push((key.clone(), format!("{e:#}")));
                }
            }
        }
        log(format!(
            "Loaded {} objects ({} rows) into bronze; {} skipped, {} failed.",
            report.objects,
            report.rows,
            report.skipped,
            report.failed.len()
        ));
        Ok(report)
    }
}

#[async_trait]
impl Task for LoadBronze {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<serde_json::Value> {
        let settings = Settings::of(ctx);
        let storage = settings.storage(self.store_url.as_deref(), &self.store_options)?;
        let state = match &self.state_url {
            Some(url) => PgPool::connect(url)
                .await
                .context("Failed to connect to the state store")?,
            None => settings.state().await?,
        };
        let warehouse: Box<dyn Warehouse> = match self.warehouse.unwrap_or(settings.warehouse.kind)
        {
            WarehouseKind::Postgres => match &self.warehouse_url {
                Some(url) => Box::new(postgres::Postgres::connect(url).await?),
                None => Box::new(postgres::Postgres::from_pool(
                    settings.warehouse_pool().await?,
                )),
            },
            WarehouseKind::Snowflake => {
                let config =
                    settings.snowflake(self.connection.as_deref(), Some(storage.stage_url()?))?;
                Box::new(snowflake::Snowflake::connect(config).await?)
            }
        };
        let log = ctx.log.clone();
        let this = LoadBronze {
            topic: if self.topic.is_empty() {
                settings.kafka.topic.clone()
            } else {
                self.topic.clone()
            },
            ..self.clone()
        };
        let report = this
            .run_with(&state, warehouse.as_ref(), &storage, move |line| {
                log.info(line)
            })
            .await?;
        if !report.failed.is_empty() {
            let names: Vec<&str> = report.failed.iter().map(|(k, _)| k.as_str()).collect();
            anyhow::bail!(
                "{} object(s) failed to load: {} (first: {})",
                names.len(),
                names.join(", "),
                report.failed[0].1
            );
        }
        Ok(serde_json::to_value(report)?)
    }
}
