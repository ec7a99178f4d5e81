//! `python`: runs a Python script file or inline code with a chosen interpreter (a
//! virtualenv's `bin/python`, say), as Airflow's PythonOperator and
//! PythonVirtualenvOperator run a callable. The run's context reaches it as SETLIST_*
//! environment variables (as for `shell`) and as a JSON file named by
//! `SETLIST_CONTEXT_FILE` (`dag_id`, `run_id`, `task_id`, `try_number`,
//! `logical_date`, `ds`, `data_interval_start`, `data_interval_end`, `conf`, `args`
//! and `upstream`: the upstream tasks' outputs). The last line of stdout that is JSON
//! becomes the output; with none, the output is the exit code and last line.
//!
//! A `script` path is read when the DAG is loaded, relative to the DAG file, and
//! stored with the DAG as `code`, so a worker needs no copy of the DAG folder.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use async_trait::async_trait;
use orchestrator::registry::InlineFile;
use orchestrator::{ParamError, Task, TaskConfig, TaskContext};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::process::{context_env, run_logged};

/// The params of a `python` task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Python {
    /// The program's text (from `script`, or written inline).
    #[serde(default)]
    pub code: Option<String>,
    /// The script's path as the DAG file gave it (read into `code` at load time).
    #[serde(default)]
    pub script: Option<String>,
    /// The interpreter: `python3` on the PATH (default), or a path such as a
    /// virtualenv's `bin/python`.
    #[serde(default = "python3")]
    pub interpreter: PathBuf,
    /// Arguments after the script (`sys.argv[1:]`); also in the context file as `args`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory; the worker's own when absent.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

fn python3() -> PathBuf {
    "python3".into()
}

impl TaskConfig for Python {
    const READS_UPSTREAM: bool = true;
    const INLINE_FILES: &'static [InlineFile] = &[InlineFile {
        from: "script",
        into: "code",
        templated: false,
    }];

    fn validate(&self) -> Result<(), ParamError> {
        match &self.code {
            None => Err(ParamError::at(
                "",
                "give the `code` to run, or a `script` file",
            )),
            Some(code) if code.trim().is_empty() => {
                Err(ParamError::at("code", "must not be empty"))
            }
            Some(_) => Ok(()),
        }
    }
}

#[async_trait]
impl Task for Python {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        let code = self.code.as_deref().unwrap_or_default();
        let mut program = tempfile::Builder::new()
            .prefix(&format!("setlist-{}-", ctx.task_id))
            .suffix(".py")
            .tempfile()
            .context("Failed to write the program to a temporary file")?;
        program.write_all(code.as_bytes())?;
        let context = json!({
            "dag_id": ctx.dag_id,
            "run_id": ctx.run_id,
            "task_id": ctx.task_id,
            "try_number": ctx.try_number,
            "logical_date": ctx.logical_date,
            "ds": ctx.logical_date.format("%Y-%m-%d").to_string(),
            "data_interval_start": ctx.data_interval_start,
            "data_interval_end": ctx.data_interval_end,
            "conf": ctx.conf,
            "args": self.args,
            "upstream": ctx.upstream_outputs,
        });
        let mut context_file = tempfile::Builder::new()
            .prefix("setlist-context-")
            .suffix(".json")
            .tempfile()
            .context("Failed to write the context file")?;
        serde_json::to_writer(&mut context_file, &context)?;
        context_file.flush()?;

        let mut cmd = Command::new(&self.interpreter);
        // Unbuffered, so its lines reach the log as they are printed.
        cmd.arg("-u")
            .arg(program.path())
            .args(&self.args)
            .envs(&self.env);
        cmd.env("SETLIST_CONTEXT_FILE", context_file.path());
        context_env(&mut cmd, ctx);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let what = match &self.script {
            Some(script) => format!("{} {script}", self.interpreter.display()),
            None => format!("{} (inline code)", self.interpreter.display()),
        };
        let ended = run_logged(cmd, ctx, &what).await?;
        match ended.status.code() {
            Some(0) => Ok(ended
                .last_json
                .unwrap_or_else(|| json!({ "exit_code": 0, "last_line": ended.last_line }))),
            Some(code) => bail!("{what} exited with code {code}"),
            None => bail!("{what} was killed by a signal"),
        }
    }
}
