//! Setlist's DAG engine. It knows DAGs, runs, tasks and their states, and nothing of
//! Kafka, object stores or dbt: task kinds plug in through [`registry::Registry`].

pub mod dag;
pub mod error;
pub mod store;
pub mod registry;
pub mod schedule;
pub mod task;
pub mod trigger_rule;

pub use dag::{Dag, DagBag, Diagnostic, TaskSpec};
pub use registry::{ParamError, Registry, TaskConfig};
pub use task::{LogStream, LogSink, Task, TaskContext};
pub use error::{Error, Result};
