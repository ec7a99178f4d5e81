//! `setlist airflow import DIR`: Airflow DAG files into Setlist's TOML (see
//! `setlist::airflow_import`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum AirflowCommand {
    /// Reads a folder of Airflow DAG files with Airflow's own parser and writes one
    /// TOML file per DAG, with a report of what came over fully, partly or not.
    Import {
        /// The folder of Airflow DAG files.
        dir: PathBuf,
        /// Where the TOML files go.
        #[arg(long, default_value = "dags/imported")]
        out: PathBuf,
        /// The Python of an Airflow installation (its virtualenv's bin/python).
        #[arg(long, env = "SETLIST_AIRFLOW_PYTHON", default_value = "python3")]
        python: PathBuf,
    },
}

pub async fn run(ctx: &Ctx, command: AirflowCommand) -> anyhow::Result<ExitCode> {
    match command {
        AirflowCommand::Import { dir, out, python } => {
            // The files must load whatever connections this configuration defines:
            // the report names the ones they use.
            let _ = ctx;
            let registry = tasks::registry();
            let report = tokio::task::spawn_blocking(move || {
                setlist::airflow_import::import(&python, &dir, &out, &registry)
            })
            .await??;
            print!("{}", setlist::airflow_import::print(&report));
            Ok(ExitCode::SUCCESS)
        }
    }
}
