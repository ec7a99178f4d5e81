//! Object storage chosen by URL: a local folder (`file:///abs/dir` or a plain path)
//! or S3 (`s3://bucket[/prefix]`, with the endpoint, region and keys its options give:
//! an `s3` connection's, which is how MinIO and SeaweedFS are reached). Nothing here
//! reads the environment; the configuration turns the usual AWS_* variables into the
//! `s3` connection.

use std::sync::Arc;

use anyhow::Context;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;

/// A store and the prefix inside it that every key of ours starts with.
#[derive(Clone, Debug)]
pub struct Storage {
    /// The store itself, shared by every clone.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix every key lives under (empty for a local folder).
    pub root: Path,
    /// The URL it was opened from, for messages and to derive a stage URL.
    pub url: String,
}

/// Whether object_store takes `key` (`aws_session_token`, `endpoint`, ...) as an S3 option.
pub fn is_s3_option(key: &str) -> bool {
    key.parse::<AmazonS3ConfigKey>().is_ok()
}

impl Storage {
    /// Opens the store `url` names; an S3 one with AWS's defaults (region us-east-1,
    /// the machine's own credentials).
    pub fn open(url: &str) -> anyhow::Result<Self> {
        Self::open_with(url, &[])
    }

    /// Like [`Storage::open`], with S3 settings (object_store's config keys:
    /// `endpoint`, `access_key_id`, `region`, ...).
    pub fn open_with(url: &str, options: &[(&str, &str)]) -> anyhow::Result<Self> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "the S3 URL {url} names no bucket");
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region("us-east-1");
            for (key, value) in options {
                let key: AmazonS3ConfigKey = key
                    .parse()
                    .with_context(|| format!("unknown S3 option {key}"))?;
                builder = builder.with_config(key, *value);
            }
            let store = builder
                .build()
                .with_context(|| format!("Failed to configure S3 for {url}"))?;
            return Ok(Self {
                store: Arc::new(store),
                root: Path::from(prefix),
                url: url.to_string(),
            });
        }
        let dir = url.strip_prefix("file://").unwrap_or(url);
        anyhow::ensure!(
            !dir.contains("://"),
            "unsupported object store URL {url} (use file:///dir or s3://bucket)"
        );
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create the folder {dir}"))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("Failed to open the folder {dir}"))?;
        Ok(Self {
            store: Arc::new(store),
            root: Path::from(""),
            url: url.to_string(),
        })
    }

    /// This store's root as a warehouse stage URL with a trailing slash
    /// (`file:///abs/dir/` or `s3://bucket/prefix/`), so a stage over it names
    /// each object by the same relative key the ledger holds.
    pub fn stage_url(&self) -> anyhow::Result<String> {
        if self.url.starts_with("s3://") {
            return Ok(format!("{}/", self.url.trim_end_matches('/')));
        }
        let dir = self.url.strip_prefix("file://").unwrap_or(&self.url);
        let abs = std::fs::canonicalize(dir).with_context(|| format!("no folder {dir}"))?;
        Ok(format!("file://{}/", abs.display()))
    }

    /// The full key of `relative` under this store's prefix.
    pub fn key(&self, relative: &str) -> Path {
        if self.root.as_ref().is_empty() {
            Path::from(relative)
        } else {
            Path::from(format!("{}/{relative}", self.root))
        }
    }
}
