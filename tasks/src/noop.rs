//! `noop`: does nothing, for tests and for measuring the engine's own overhead.

use async_trait::async_trait;
use orchestrator::{Task, TaskConfig, TaskContext};
use serde::Deserialize;
use serde_json::Value;

/// Takes no params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noop {}

#[async_trait]
impl Task for Noop {
    async fn run(&self, _ctx: &TaskContext) -> anyhow::Result<Value> {
        Ok(Value::Null)
    }
}

impl TaskConfig for Noop {}
