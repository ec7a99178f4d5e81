//! Setlist's DAG engine. It knows DAGs, runs, tasks and their states, and nothing of
//! Kafka, object stores or dbt: task kinds plug in through [`registry::Registry`].

#![warn(missing_docs)]

pub mod dag;
pub mod error;
pub mod mapping;
pub mod registry;
pub mod resources;
pub mod schedule;
pub mod scheduler;
pub mod secret;
pub mod state;
pub mod store;
pub mod task;
pub mod template;
pub mod trigger_rule;
pub mod worker;

pub use dag::{Dag, DagBag, Diagnostic, TaskSpec};
pub use error::{Error, Result};
pub use registry::{ParamError, Registry, TaskConfig};
pub use resources::Resources;
pub use secret::{DbUrl, Secret};
pub use state::{AttemptState, FailureReason, RunState, TaskState, WorkerState};
pub use task::{Downstream, Fatal, LogSink, LogStream, PokeAgain, Task, TaskContext};
