//! Setlist's task kinds. Each kind is a config struct deserialised from a task's
//! `params` that implements the engine's `Task` trait; [`registry`] lists them all.

#![warn(missing_docs)]

pub mod airflow;
pub mod bronze;
pub mod connection;
pub mod dbt;
pub mod kafka;
pub mod land;
pub mod noop;
pub mod play;
pub mod process;
pub mod raw;
pub mod settings;
pub mod shell;
pub mod simulate;
pub mod sql;
pub mod storage;

use orchestrator::Registry;

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
        .register::<sql::Sql>("sql");
    registry
}
