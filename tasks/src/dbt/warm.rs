//! Warm dbt processes. A new `dbt` process spends about two seconds importing dbt
//! before it runs anything, and the pipeline runs dbt twice a minute; so dbt commands
//! run in long-lived Python processes (`warm.py`, dbt's programmatic `dbtRunner`),
//! one command at a time each, kept idle between runs and reused by any task with the
//! same Python and environment (project, profiles and target come with each command).
//! A process that was cancelled mid-command, died, ran many commands or sat idle long
//! is not reused.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use orchestrator::{LogStream, TaskContext};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const SCRIPT: &str = include_str!("warm.py");
/// Starts the line that ends each command (and the start-up), as warm.py writes it.
const MARK: &str = "\x1esetlist-dbt ";
/// A process is retired after this many commands, bounding whatever dbt keeps.
const MAX_RUNS: u32 = 200;
/// An idle process older than this is stopped rather than reused.
const MAX_IDLE: Duration = Duration::from_secs(600);

/// What makes two tasks' processes interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Spec {
    /// The Python that runs dbt, so processes of different dbts never mix.
    pub python: PathBuf,
    /// The environment a process starts with, so a process serves only tasks that share it.
    pub env: BTreeMap<String, String>,
}

/// How one command ended.
#[derive(Debug, Deserialize)]
pub(super) struct Verdict {
    /// Whether dbt reported the command as succeeded.
    #[serde(default)]
    pub success: bool,
    /// The exception dbt raised, if any, to say why the command failed.
    #[serde(default)]
    pub error: Option<String>,
}

struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    runs: u32,
    idle_since: Instant,
}

static IDLE: LazyLock<Mutex<HashMap<Spec, Vec<Process>>>> = LazyLock::new(Default::default);

/// The Python that runs `dbt`, from the first line of its entry-point script; None
/// when `dbt` is not a Python script (a native build such as dbt Fusion).
pub(super) fn python_of(dbt: &Path) -> Option<PathBuf> {
    let path = if dbt.components().count() > 1 {
        dbt.to_path_buf()
    } else {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(dbt))
            .find(|p| p.is_file())?
    };
    let head = std::fs::read(&path).ok()?;
    let first = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first.strip_prefix(b"#!")?).ok()?.trim();
    let mut words = line.split_whitespace();
    let mut interpreter = words.next()?;
    if interpreter.ends_with("/env") {
        interpreter = words.next()?;
    }
    let name = Path::new(interpreter).file_name()?.to_str()?;
    name.starts_with("python")
        .then(|| PathBuf::from(interpreter))
}

/// Runs one dbt command (`args`, as the CLI takes them) in a warm process, its log
/// into the attempt's log.
pub(super) async fn run(
    spec: &Spec,
    args: &[String],
    ctx: &TaskContext,
) -> anyhow::Result<Verdict> {
    let mut process = match take_idle(spec) {
        Some(process) => process,
        None => start(spec, ctx).await?,
    };
    ctx.log.write(
        LogStream::Task,
        format!(
            "dbt runs in warm process {} (command {} of at most {MAX_RUNS})",
            process.child.id().unwrap_or_default(),
            process.runs + 1
        ),
    );
    let request = serde_json::to_string(args)? + "\n";
    process
        .stdin
        .write_all(request.as_bytes())
        .await
        .context("cannot send the command to dbt's warm process")?;
    let verdict = tokio::select! {
        verdict = read_until_mark(&mut process, ctx) => verdict?,
        _ = ctx.cancel.cancelled() => {
            stop(&process);
            bail!("stopped: dbt's warm process was killed");
        }
    };
    process.runs += 1;
    if process.runs < MAX_RUNS {
        process.idle_since = Instant::now();
        IDLE.lock()
            .expect("the idle dbt processes' lock")
            .entry(spec.clone())
            .or_default()
            .push(process);
    }
    Ok(verdict)
}

fn take_idle(spec: &Spec) -> Option<Process> {
    let mut idle = IDLE.lock().expect("the idle dbt processes' lock");
    let processes = idle.get_mut(spec)?;
    while let Some(mut process) = processes.pop() {
        let alive = matches!(process.child.try_wait(), Ok(None));
        if alive && process.idle_since.elapsed() < MAX_IDLE {
            return Some(process);
        }
        stop(&process);
    }
    None
}

async fn start(spec: &Spec, ctx: &TaskContext) -> anyhow::Result<Process> {
    let mut child = Command::new(&spec.python)
        .arg("-u")
        .arg("-c")
        .arg(SCRIPT)
        .envs(&spec.env)
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .env("DBT_USE_COLORS", "false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, so a cancel stops whatever dbt started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "Failed to start dbt's warm process with {} (install dbt with scripts/dbt.sh)",
                spec.python.display()
            )
        })?;
    let mut process = Process {
        stdin: child.stdin.take().expect("stdin is piped"),
        stdout: BufReader::new(child.stdout.take().expect("stdout is piped")).lines(),
        child,
        runs: 0,
        idle_since: Instant::now(),
    };
    read_until_mark(&mut process, ctx).await?;
    Ok(process)
}

/// Forwards the log to `ctx` until the marker line and returns its verdict.
async fn read_until_mark(process: &mut Process, ctx: &TaskContext) -> anyhow::Result<Verdict> {
    while let Some(line) = process
        .stdout
        .next_line()
        .await
        .context("cannot read dbt's warm process")?
    {
        match line.strip_prefix(MARK) {
            Some(json) => {
                return serde_json::from_str(json)
                    .with_context(|| format!("dbt's warm process wrote a bad verdict: {json}"));
            }
            None => ctx.log.write(LogStream::Stdout, line),
        }
    }
    let status = process.child.wait().await?;
    bail!(
        "dbt's warm process ({}) exited with {status}; its log above says why",
        process.child.id().map_or("?".into(), |id| id.to_string())
    )
}

fn stop(process: &Process) {
    if let Some(pid) = process.child.id() {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, first_line: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("{first_line}\nimport sys\n")).unwrap();
        path
    }

    #[test]
    fn finds_the_python_of_a_dbt_script() {
        let dir = tempfile::tempdir().unwrap();
        let venv = script(dir.path(), "dbt", "#!/opt/venv/bin/python3.11");
        assert_eq!(
            python_of(&venv),
            Some(PathBuf::from("/opt/venv/bin/python3.11"))
        );
        let env = script(dir.path(), "dbt-env", "#!/usr/bin/env python3");
        assert_eq!(python_of(&env), Some(PathBuf::from("python3")));
        let native = dir.path().join("dbt-native");
        std::fs::write(&native, b"\x7fELF\x02\x01\x01").unwrap();
        assert_eq!(python_of(&native), None);
        let shell = script(dir.path(), "dbt-sh", "#!/bin/sh");
        assert_eq!(python_of(&shell), None);
        assert_eq!(python_of(&dir.path().join("missing")), None);
    }
}
