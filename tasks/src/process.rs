//! Running a child process as a task: its stdout and stderr stream into the attempt's
//! log line by line, and a cancel (timeout, manual stop) kills its whole process group.

use std::process::{ExitStatus, Stdio};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use orchestrator::{LogStream, TaskContext};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// How a child process ended.
#[derive(Debug)]
pub struct Ended {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its last line on stdout.
    pub last_line: Option<String>,
    /// Its last line on stdout that was JSON, parsed.
    pub last_json: Option<Value>,
}

async fn forward(
    reader: impl AsyncRead + Unpin,
    ctx: &TaskContext,
    stream: LogStream,
) -> (Option<String>, Option<Value>) {
    let mut lines = BufReader::new(reader).lines();
    let (mut last, mut last_json) = (None, None);
    while let Ok(Some(line)) = lines.next_line().await {
        if stream == LogStream::Stdout {
            if let Ok(json) = serde_json::from_str::<Value>(&line) {
                last_json = Some(json);
            }
            ctx.log.write(stream, line.clone());
            last = Some(line);
        } else {
            ctx.log.write(stream, line);
        }
    }
    (last, last_json)
}

/// Hands the run's context to a child process as SETLIST_* variables: the DAG, run,
/// task and try, the logical date and data interval (RFC 3339) and the conf (JSON).
pub fn context_env(cmd: &mut Command, ctx: &TaskContext) {
    cmd.env("SETLIST_DAG_ID", &ctx.dag_id)
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
        .env("SETLIST_CONF", ctx.conf.to_string());
}

/// Runs `cmd` to its end; returns how it ended.
pub async fn run_logged(mut cmd: Command, ctx: &TaskContext, what: &str) -> anyhow::Result<Ended> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout or cancel stops everything it started.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("Failed to start {what}"))?;
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
    let (((last_line, last_json), _), status) = tokio::select! {
        done = finished => done,
        _ = ctx.cancel.cancelled() => {
            if let Some(pid) = pid {
                let _ = killpg(pid, Signal::SIGKILL);
            }
            bail!("stopped: the process group of {what} was killed");
        }
    };
    let status = status.with_context(|| format!("Failed to wait for {what}"))?;
    Ok(Ended {
        status,
        last_line,
        last_json,
    })
}
