//! `setlist dags ...`

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use orchestrator::dag::load_dir;
use orchestrator::store::{dags, runs};
use orchestrator::{Dag, DagBag};

use super::{Ctx, time_arg};

#[derive(Debug, Subcommand)]
pub enum DagsCommand {
    /// Lists the DAGs that load, with their schedules and paused flags.
    List,
    /// Checks every DAG file and prints every problem as file:line:column.
    Validate,
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

fn load(ctx: &Ctx) -> DagBag {
    let bag = load_dir(&ctx.config().dags_dir, &ctx.registry);
    for e in &bag.errors {
        eprintln!("{e}");
    }
    bag
}

fn find<'b>(bag: &'b DagBag, ctx: &Ctx, id: &str) -> anyhow::Result<&'b Dag> {
    bag.get(id).ok_or_else(|| {
        let known: Vec<&str> = bag.dags.iter().map(|d| d.id.as_str()).collect();
        anyhow::anyhow!(
            "no DAG `{id}` in {} (loaded: {})",
            ctx.config().dags_dir.display(),
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )
    })
}

pub async fn run(ctx: &Ctx, command: DagsCommand) -> anyhow::Result<ExitCode> {
    match command {
        DagsCommand::Validate => {
            let bag = load(ctx);
            for dag in &bag.dags {
                println!(
                    "ok  {} ({} tasks) {}",
                    dag.id,
                    dag.tasks.len(),
                    dag.file.display()
                );
            }
            if bag.errors.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} problem(s) found.", bag.errors.len());
                Ok(ExitCode::FAILURE)
            }
        }
        DagsCommand::List => {
            let bag = load(ctx);
            let pool = ctx.pool(2).await?;
            dags::sync(&pool, &bag).await?;
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
            let bag = load(ctx);
            let dag = find(&bag, ctx, &dag_id)?;
            println!("{}", serde_json::to_string_pretty(dag)?);
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Trigger {
            dag_id,
            conf,
            logical_date,
        } => {
            let conf: serde_json::Value = serde_json::from_str(&conf)
                .map_err(|e| anyhow::anyhow!("--conf is not valid JSON: {e}"))?;
            let bag = load(ctx);
            let dag = find(&bag, ctx, &dag_id)?;
            let pool = ctx.pool(2).await?;
            let run_id = runs::trigger(&pool, dag, conf, logical_date).await?;
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
            let bag = load(ctx);
            let dag = find(&bag, ctx, &dag_id)?;
            let pool = ctx.pool(2).await?;
            let done = runs::backfill(&pool, dag, from, to).await?;
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
    let bag = load(ctx);
    let pool = ctx.pool(2).await?;
    if let Some(dag) = bag.get(dag_id) {
        dags::upsert(&pool, dag).await?;
    }
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
