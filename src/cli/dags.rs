//! `setlist dags ...`. Only `validate` and `sync` read the DAG folder (`sync` records
//! it as a scheduler's parse does); every other command reads the DAGs the state store
//! holds, as the pages and the API do.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use orchestrator::DagBag;
use orchestrator::dag::load_dir;
use orchestrator::store::{dags, runs};

use super::{Ctx, time_arg};

#[derive(Debug, Subcommand)]
pub enum DagsCommand {
    /// Lists the DAGs the scheduler loaded, with their schedules and paused flags, and
    /// the problems of the files that did not load.
    List,
    /// Checks every DAG file and prints every problem as file:line:column.
    Validate,
    /// Parses the DAG folder once and records it in the state store, as a scheduler
    /// does at every change (for a store no scheduler has seen yet).
    Sync,
    /// Prints one DAG's definition as JSON.
    Show { dag_id: String },
    /// Creates a manual run now.
    Trigger {
        dag_id: String,
        /// The run's conf, a JSON object its tasks can read.
        #[arg(long, default_value = "{}")]
        conf: String,
        /// The run's logical date (default: now).
        #[arg(long, value_parser = time_arg::parse)]
        logical_date: Option<DateTime<Utc>>,
    },
    /// Stops scheduling a DAG.
    Pause { dag_id: String },
    /// Resumes scheduling a DAG.
    Unpause { dag_id: String },
    /// Creates runs for every interval that starts in [--from, --to) and shows their progress.
    Backfill {
        dag_id: String,
        #[arg(long, value_parser = time_arg::parse)]
        from: DateTime<Utc>,
        #[arg(long, value_parser = time_arg::parse)]
        to: DateTime<Utc>,
        /// Return once the runs exist instead of waiting for them to finish.
        #[arg(long)]
        no_wait: bool,
    },
}

/// Parses the DAG folder, printing every problem.
fn load(ctx: &Ctx) -> DagBag {
    let bag = load_dir(&ctx.config().dags_dir, &ctx.registry);
    print_problems(&bag);
    bag
}

fn print_problems(bag: &DagBag) {
    for e in &bag.errors {
        eprintln!("{e}");
    }
}

/// Prints each DAG that loaded; fails when a file did not.
fn report(bag: &DagBag) -> ExitCode {
    for dag in &bag.dags {
        println!(
            "ok  {} ({} tasks) {}",
            dag.id,
            dag.tasks.len(),
            dag.file.display()
        );
    }
    if bag.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s) found.", bag.errors.len());
        ExitCode::FAILURE
    }
}

pub async fn run(ctx: &Ctx, command: DagsCommand) -> anyhow::Result<ExitCode> {
    match command {
        DagsCommand::Validate => Ok(report(&load(ctx))),
        DagsCommand::Sync => {
            let bag = load(ctx);
            let pool = ctx.pool(2).await?;
            dags::record_parse(&pool, &bag).await?;
            Ok(report(&bag))
        }
        DagsCommand::List => {
            let pool = ctx.pool(2).await?;
            let bag = dags::parsed(&pool).await?;
            print_problems(&bag);
            let paused = dags::paused(&pool).await?;
            println!(
                "{:<32} {:<16} {:<16} {:<7} TAGS",
                "DAG", "SCHEDULE", "TIMEZONE", "PAUSED"
            );
            for dag in &bag.dags {
                println!(
                    "{:<32} {:<16} {:<16} {:<7} {}",
                    dag.id,
                    dag.schedule.expr().unwrap_or("none"),
                    dag.schedule.timezone().name(),
                    paused.get(&dag.id).copied().unwrap_or(false),
                    dag.tags.join(",")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Show { dag_id } => {
            let dag = dags::get(&ctx.pool(2).await?, &dag_id).await?;
            println!("{}", serde_json::to_string_pretty(&dag)?);
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Trigger {
            dag_id,
            conf,
            logical_date,
        } => {
            let conf: serde_json::Value = serde_json::from_str(&conf)
                .map_err(|e| anyhow::anyhow!("--conf is not valid JSON: {e}"))?;
            let pool = ctx.pool(2).await?;
            let dag = dags::get(&pool, &dag_id).await?;
            let run_id = runs::trigger(&pool, &dag, conf, logical_date).await?;
            println!("Triggered run {run_id} of {dag_id}.");
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Pause { dag_id } => set_paused(ctx, &dag_id, true).await,
        DagsCommand::Unpause { dag_id } => set_paused(ctx, &dag_id, false).await,
        DagsCommand::Backfill {
            dag_id,
            from,
            to,
            no_wait,
        } => {
            let pool = ctx.pool(2).await?;
            let dag = dags::get(&pool, &dag_id).await?;
            let done = runs::backfill(&pool, &dag, from, to).await?;
            println!(
                "Created {} backfill run(s) of {dag_id}; {} interval(s) already had a run.",
                done.created.len(),
                done.existing
            );
            if no_wait || done.created.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            wait_for_runs(&pool, &done.created).await
        }
    }
}

async fn set_paused(ctx: &Ctx, dag_id: &str, paused: bool) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool(2).await?;
    dags::set_paused(&pool, dag_id, paused).await?;
    println!(
        "{dag_id} is {}.",
        if paused { "paused" } else { "unpaused" }
    );
    Ok(ExitCode::SUCCESS)
}

/// A progress bar over the runs until every one has ended.
async fn wait_for_runs(pool: &sqlx::PgPool, ids: &[i64]) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::new(ids.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs ended, {msg} [{elapsed_precise}, eta {eta}]",
        )
        .expect("a valid template"),
    );
    eprintln!(
        "Waiting for the runs (a scheduler and workers must be running; Ctrl-C stops waiting, not the runs)."
    );
    loop {
        let (ended, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state IN ('success', 'failed')),
                    count(*) FILTER (WHERE state = 'failed')
             FROM setlist.dag_runs WHERE id = ANY ($1)",
        )
        .bind(ids)
        .fetch_one(pool)
        .await?;
        bar.set_position(ended as u64);
        bar.set_message(format!("{failed} failed"));
        if ended as usize == ids.len() {
            bar.finish();
            return Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
