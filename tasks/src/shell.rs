//! `shell`: runs a command with `sh -c`, streams its stdout and stderr into the
//! attempt's log, and fails on a non-zero exit. The run's context reaches the command
//! as SETLIST_* environment variables.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, bail};
use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use orchestrator::{LogStream, ParamError, Task, TaskConfig, TaskContext};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

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

async fn forward(
    reader: impl AsyncRead + Unpin,
    ctx: &TaskContext,
    stream: LogStream,
) -> Option<String> {
    let mut lines = BufReader::new(reader).lines();
    let mut last = None;
    while let Ok(Some(line)) = lines.next_line().await {
        ctx.log.write(stream, line.clone());
        if stream == LogStream::Stdout {
            last = Some(line);
        }
    }
    last
}

#[async_trait]
impl Task for Shell {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&self.command)
            .envs(&self.env)
            .env("SETLIST_DAG_ID", &ctx.dag_id)
            .env("SETLIST_RUN_ID", ctx.run_id.to_string())
            .env("SETLIST_TASK_ID", &ctx.task_id)
            .env("SETLIST_TRY_NUMBER", ctx.try_number.to_string())
            .env("SETLIST_LOGICAL_DATE", ctx.logical_date.to_rfc3339())
            .env(
                "SETLIST_DATA_INTERVAL_START",
                ctx.data_interval_start.to_rfc3339(),
            )
            .env(
                "SETLIST_DATA_INTERVAL_END",
                ctx.data_interval_end.to_rfc3339(),
            )
            .env("SETLIST_CONF", ctx.conf.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout or cancel stops everything it started.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("Failed to start `sh -c {}`", self.command))?;
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let io = async {
            tokio::join!(
                forward(stdout, ctx, LogStream::Stdout),
                forward(stderr, ctx, LogStream::Stderr)
            )
        };
        let finished = async { tokio::join!(io, child.wait()) };
        let ((last_line, _), status) = tokio::select! {
            done = finished => done,
            _ = ctx.cancel.cancelled() => {
                if let Some(pid) = pid {
                    let _ = killpg(pid, Signal::SIGKILL);
                }
                bail!("stopped: the process group was killed");
            }
        };
        let status = status.context("Failed to wait for the command")?;
        match status.code() {
            Some(0) => Ok(json!({ "exit_code": 0, "last_line": last_line })),
            Some(code) => bail!("command exited with code {code}"),
            None => bail!("command was killed by a signal"),
        }
    }
}
