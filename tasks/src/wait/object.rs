//! `wait_object`: waits for an object in the lake (or any store): a `key`, or at
//! least `min_objects` objects under a `prefix`, as Airflow's S3KeySensor and
//! FileSensor do. The store is the configuration's (`[store]`, the lander's lake)
//! unless `store` names another URL (a folder, `s3://bucket/prefix`), whose S3
//! settings come from `connection` (an `s3` connection).

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use orchestrator::{ParamError, TaskContext};
use serde::Deserialize;
use serde_json::json;

use super::{Check, Poll};
use crate::connection::ConnectionKind;
use crate::settings::Settings;

/// The params of a `wait_object` wait (besides `poke_interval` and `timeout`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitObject {
    /// One object's key, under the store's root.
    #[serde(default)]
    pub key: Option<String>,
    /// A prefix under the store's root: met when it holds `min_objects` objects.
    #[serde(default)]
    pub prefix: Option<String>,
    /// How many objects under `prefix` are enough (default 1).
    #[serde(default = "one")]
    pub min_objects: usize,
    /// Another store than the configuration's: a folder or `s3://bucket[/prefix]`.
    #[serde(default)]
    pub store: Option<String>,
    /// The `s3` connection for `store` (default: the configuration's store's).
    #[serde(default)]
    pub connection: Option<String>,
}

fn one() -> usize {
    1
}

#[async_trait]
impl Check for WaitObject {
    async fn check(&self, ctx: &TaskContext) -> anyhow::Result<Poll> {
        let settings = Settings::of(ctx);
        let options = match &self.connection {
            Some(name) => settings
                .connections
                .get(name, ConnectionKind::S3)?
                .s3_options(),
            None => Vec::new(),
        };
        let storage = settings.storage(self.store.as_deref(), &options)?;
        if let Some(key) = &self.key {
            let path = storage
                .root
                .parts()
                .chain(Path::from(key.as_str()).parts())
                .collect::<Path>();
            return Ok(match storage.store.head(&path).await {
                Ok(meta) => Poll::Met(json!({
                    "key": key, "size": meta.size, "last_modified": meta.last_modified,
                })),
                Err(object_store::Error::NotFound { .. }) => {
                    Poll::NotYet(format!("no object {key} in {}", storage.url))
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("looking for {key} in {}", storage.url)));
                }
            });
        }
        let prefix = self.prefix.as_deref().unwrap_or_default();
        let path = storage
            .root
            .parts()
            .chain(Path::from(prefix).parts())
            .collect::<Path>();
        let mut listed = storage.store.list(Some(&path));
        let mut found = 0usize;
        let mut bytes = 0u64;
        loop {
            let meta = match listed.try_next().await {
                Ok(Some(meta)) => meta,
                // A folder that does not exist yet holds nothing.
                Ok(None) | Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("listing {prefix:?} in {}", storage.url)));
                }
            };
            found += 1;
            bytes += meta.size;
            if found >= self.min_objects {
                break;
            }
        }
        Ok(if found >= self.min_objects {
            Poll::Met(json!({ "prefix": prefix, "objects": found, "bytes": bytes }))
        } else {
            Poll::NotYet(format!(
                "{found} of {} object(s) under {prefix:?} in {}",
                self.min_objects, storage.url
            ))
        })
    }

    fn validate(&self) -> Result<(), ParamError> {
        match (&self.key, &self.prefix) {
            (None, None) => Err(ParamError::at(
                "",
                "give the `key` of an object or a `prefix`",
            )),
            (Some(_), Some(_)) => Err(ParamError::at(
                "prefix",
                "give a `key` or a `prefix`, not both",
            )),
            _ if self.min_objects == 0 => Err(ParamError::at("min_objects", "must be at least 1")),
            _ => Ok(()),
        }
    }

    fn connections(&self) -> Vec<(&'static str, String)> {
        orchestrator::registry::connection_param(self.connection.as_ref())
    }
}
