//! `setlist runs ...` and `setlist tasks ...`

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use orchestrator::store::{runs, transitions};

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Lists the latest runs, newest first.
    List {
        /// Only this DAG's runs.
        #[arg(long)]
        dag: Option<String>,
        #[arg(long, default_value_t = 25)]
        limit: i64,
    },
    /// Shows a run and its task instances.
    Show { run_id: i64 },
    /// Cancels a whole run: tasks not running fail as cancelled, running ones are
    /// stopped, and the run ends cancelled.
    Cancel {
        run_id: i64,
        /// Why, kept with the run.
        #[arg(long, default_value = "cancelled from the CLI")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Clears task instances of a run so they run again.
    Clear {
        run_id: i64,
        #[arg(required = true)]
        task_ids: Vec<String>,
        /// Also clear every task downstream of them.
        #[arg(long)]
        downstream: bool,
    },
    /// Stops a running task instance; it fails without a retry.
    Cancel { run_id: i64, task_id: String },
    /// Prints the log of a task instance's attempt (the latest unless --try).
    Logs {
        run_id: i64,
        task_id: String,
        #[arg(long = "try")]
        try_number: Option<i32>,
    },
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| "-".into())
}

fn duration(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!(
            "{:.3}s",
            (e - s).num_microseconds().unwrap_or(0) as f64 / 1e6
        ),
        _ => "-".into(),
    }
}

pub async fn run_runs(ctx: &Ctx, command: RunsCommand) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool(2).await?;
    match command {
        RunsCommand::List { dag, limit } => {
            println!(
                "{:<8} {:<28} {:<26} {:<10} {:<8} DURATION",
                "RUN", "DAG", "LOGICAL DATE", "TYPE", "STATE"
            );
            for r in runs::list(&pool, dag.as_deref(), limit).await? {
                println!(
                    "{:<8} {:<28} {:<26} {:<10} {:<8} {}",
                    r.id,
                    r.dag_id,
                    r.logical_date.to_rfc3339(),
                    r.run_type,
                    r.state,
                    duration(r.started_at, r.ended_at)
                );
            }
        }
        RunsCommand::Cancel { run_id, reason } => {
            let done = orchestrator::store::cancel::cancel_run(&pool, run_id, &reason).await?;
            println!(
                "Run {run_id} is {}: {} task(s) cancelled, {} stopping.",
                done.state,
                done.stopped.len(),
                done.stopping.len()
            );
        }
        RunsCommand::Show { run_id } => {
            let (r, tasks) = runs::get(&pool, run_id).await?;
            println!("run {} of {} ({}, {})", r.id, r.dag_id, r.run_type, r.state);
            println!("logical date  {}", r.logical_date.to_rfc3339());
            println!(
                "data interval [{}, {})",
                r.data_interval_start.to_rfc3339(),
                r.data_interval_end.to_rfc3339()
            );
            println!("conf          {}", r.conf);
            println!(
                "started       {}   ended {}",
                time(r.started_at),
                time(r.ended_at)
            );
            println!();
            println!(
                "{:<24} {:<10} {:<16} {:<7} {:<24} DURATION",
                "TASK", "KIND", "STATE", "TRIES", "STARTED"
            );
            for t in tasks {
                println!(
                    "{:<24} {:<10} {:<16} {:<7} {:<24} {}",
                    t.task_id,
                    t.kind,
                    t.state,
                    format!("{}/{}", t.try_number, t.max_tries),
                    time(t.started_at),
                    duration(t.started_at, t.ended_at)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_tasks(ctx: &Ctx, command: TasksCommand) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool(2).await?;
    match command {
        TasksCommand::Clear {
            run_id,
            task_ids,
            downstream,
        } => {
            let cleared = transitions::clear(&pool, run_id, &task_ids, downstream).await?;
            println!(
                "Cleared {} task(s) of run {run_id}: {}.",
                cleared.len(),
                cleared.join(", ")
            );
        }
        TasksCommand::Cancel { run_id, task_id } => {
            transitions::request_cancel(&pool, run_id, &task_id).await?;
            println!("Asked the worker to stop {task_id} of run {run_id}.");
        }
        TasksCommand::Logs {
            run_id,
            task_id,
            try_number,
        } => {
            let lines =
                orchestrator::store::logs::attempt(&pool, run_id, &task_id, try_number).await?;
            for l in lines {
                println!(
                    "{} {:<6} {}",
                    l.logged_at.format("%H:%M:%S%.3f"),
                    l.stream,
                    l.line
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
