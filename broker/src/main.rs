//! tansu's command line (`setlist-broker broker --listener-url ...`), as its own
//! binary does it: the broker with tracing to stderr. Built here rather than with
//! `cargo install tansu` so that the first `scripts/run.sh` compiles the crates tansu
//! and Setlist share (tokio, hyper, rustls, aws-lc, zstd, serde ...) once, in one
//! cargo invocation (see bench/README.md, "First run").

use tansu_broker::{TracingFormat, otel};
use tansu_cli::Cli;
use tansu_sans_io::ErrorCode;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _guard = match otel::init(TracingFormat::Text) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: cannot start tracing: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match Cli::main().await {
        Ok(ErrorCode::None) => std::process::ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("error: {code}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
