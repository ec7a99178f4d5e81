//! The Kafka-protocol broker for development and tests: tansu's broker (0.6.0) with
//! the settings scripts/kafka.sh gives it, as `tansu broker` would run it (tracing to
//! stderr, Ctrl-C and SIGTERM stop it). Built in Setlist's workspace so that the first
//! `scripts/run.sh` compiles the crates tansu and Setlist share once, in one cargo
//! invocation; and from tansu's broker crate alone, not tansu's whole command line,
//! whose proxy, perf, generator, cat and topic tools the scripts never use and the
//! first run need not compile (see bench/README.md, "First run").

use std::process::ExitCode;

use clap::Parser;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_broker::{NODE_ID, TracingFormat, otel};
use tansu_sans_io::ErrorCode;
use tansu_storage::StorageContainer;
use url::Url;

/// What `setlist-broker` runs.
#[derive(Debug, Parser)]
#[command(name = "setlist-broker", version)]
enum Cli {
    /// Runs the broker until interrupted.
    Broker(BrokerArgs),
}

/// The broker's settings, named (flags and variables) as tansu's own command line
/// names them.
#[derive(Debug, clap::Args)]
struct BrokerArgs {
    /// All members of the same cluster use the same id.
    #[arg(long, env = "CLUSTER_ID", default_value = "tansu_cluster")]
    cluster_id: String,
    /// Where the broker listens.
    #[arg(long, env = "LISTENER_URL", default_value = "tcp://127.0.0.1:9092")]
    listener_url: Url,
    /// The address clients are told in metadata.
    #[arg(
        long,
        env = "ADVERTISED_LISTENER_URL",
        default_value = "tcp://127.0.0.1:9092"
    )]
    advertised_listener_url: Url,
    /// Where the broker keeps its data: memory://tansu/ (or another engine tansu's
    /// features built in).
    #[arg(long, env = "STORAGE_ENGINE", default_value = "memory://tansu/")]
    storage_engine: Url,
}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli::Broker(args) = Cli::parse();
    let _guard = match otel::init(TracingFormat::Text) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: cannot start tracing: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = tokio::time::Instant::now();
    let broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(NODE_ID)
        .cluster_id(args.cluster_id)
        .incarnation_id(uuid::Uuid::now_v7())
        .advertised_listener(args.advertised_listener_url)
        .storage(args.storage_engine)
        .listener(args.listener_url)
        .build()
        .await;
    let result = match broker {
        Ok(broker) => broker.main(started).await,
        Err(e) => {
            eprintln!("error: cannot start the broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(ErrorCode::None) => ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("error: {code}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
