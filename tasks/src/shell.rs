//! `shell`: runs a command with `sh -c`, streams its stdout and stderr into the
//! attempt's log, and fails on a non-zero exit. The run's context reaches the command
//! as SETLIST_* environment variables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use async_trait::async_trait;
use orchestrator::{ParamError, Task, TaskConfig, TaskContext};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::process::{context_env, run_logged};

/// The `shell` task's params: a command line and where and how to run it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shell {
    /// The command line, run by `sh -c`.
    pub command: String,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory; the worker's own when absent.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

impl TaskConfig for Shell {
    fn validate(&self) -> Result<(), ParamError> {
        if self.command.trim().is_empty() {
            return Err(ParamError::at("command", "must not be empty"));
        }
        Ok(())
    }
}

#[async_trait]
impl Task for Shell {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(&self.command).envs(&self.env);
        context_env(&mut cmd, ctx);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let ended = run_logged(cmd, ctx, &format!("`sh -c {}`", self.command)).await?;
        match ended.status.code() {
            Some(0) => Ok(json!({ "exit_code": 0, "last_line": ended.last_line })),
            Some(code) => bail!("command exited with code {code}"),
            None => bail!("command was killed by a signal"),
        }
    }
}
