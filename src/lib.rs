//! Setlist as a library: the one [`config::Config`], the [`App`] that it builds and
//! the supervised services the binary's commands start. `main.rs` only parses the
//! command line and calls in here, so tests drive the same code.

#![warn(missing_docs)]

pub mod airflow_import;
pub mod app;
pub mod config;
pub mod shutdown;
pub mod supervise;

pub use app::{App, Services};
pub use config::Config;
pub use shutdown::shutdown_on_signal;
