//! Running a child process as a task: its stdout and stderr stream into the attempt's
//! log line by line, and a cancel (timeout, manual stop) kills its whole process group.

use std::process::{ExitStatus, Stdio};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use orchestrator::{LogStream, TaskContext};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

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

/// Runs `cmd` to its end; returns its exit status and last stdout line.
pub async fn run_logged(
    mut cmd: Command,
    ctx: &TaskContext,
    what: &str,
) -> anyhow::Result<(ExitStatus, Option<String>)> {
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
    let ((last_line, _), status) = tokio::select! {
        done = finished => done,
        _ = ctx.cancel.cancelled() => {
            if let Some(pid) = pid {
                let _ = killpg(pid, Signal::SIGKILL);
            }
            bail!("stopped: the process group of {what} was killed");
        }
    };
    let status = status.with_context(|| format!("Failed to wait for {what}"))?;
    Ok((status, last_line))
}
