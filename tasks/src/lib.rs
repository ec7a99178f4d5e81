//! Setlist's task kinds. Each kind is a config struct deserialised from a task's
//! `params` that implements the engine's `Task` trait; [`registry`] lists them all.

#![warn(missing_docs)]

pub mod airflow;
pub mod alerts;
pub mod branch;
pub mod bronze;
pub mod connection;
pub mod dbt;
pub mod http;
pub mod kafka;
pub mod land;
pub mod noop;
pub mod notify;
pub mod play;
pub mod process;
pub mod python;
pub mod raw;
pub mod settings;
pub mod shell;
pub mod simulate;
pub mod sql;
pub mod storage;
pub mod trigger_dag;
pub mod wait;

use orchestrator::Registry;
use wait::Wait;

/// Every task kind this build knows, by the name DAG files use in `kind`.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register::<noop::Noop>("noop")
        .register::<shell::Shell>("shell")
        .register::<simulate::Simulate>("simulate")
        .register::<bronze::LoadBronze>("load_bronze")
        .register::<dbt::Dbt>("dbt")
        .register::<airflow::AirflowDag>("airflow_dag")
        .register::<sql::Sql>("sql")
        .register::<http::Request>("http")
        .register::<python::Python>("python")
        .register::<notify::Notify>("notify")
        .register::<branch::Branch>("branch")
        .register::<branch::ShortCircuit>("short_circuit")
        .register::<Wait<trigger_dag::TriggerDag>>("trigger_dag")
        .register::<Wait<wait::WaitObject>>("wait_object")
        .register::<Wait<wait::WaitSql>>("wait_sql")
        .register::<Wait<http::Request>>("wait_http")
        .register::<Wait<wait::WaitRun>>("wait_run")
        .register::<Wait<wait::WaitUntil>>("wait_until");
    registry
}
