//! `setlist connections ...`: the named connections of the configuration, and whether
//! each one reaches what it names.

use std::process::ExitCode;

use clap::Subcommand;

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Lists each connection: its name, kind, URL (no secrets) and where it was defined.
    List,
    /// Connects with one connection for real and says what answered or what failed.
    Test {
        /// The connection's name.
        name: String,
    },
}

pub async fn run(ctx: &Ctx, command: ConnectionsCommand) -> anyhow::Result<ExitCode> {
    let connections = &ctx.config().resolved;
    match command {
        ConnectionsCommand::List => {
            println!("{:<20} {:<10} {:<60} FROM", "NAME", "KIND", "URL");
            for c in connections.iter() {
                println!(
                    "{:<20} {:<10} {:<60} {}",
                    c.name,
                    c.kind,
                    c.shown(),
                    ctx.loaded.origin_of(&format!("connections.{}.url", c.name))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ConnectionsCommand::Test { name } => {
            let connection = connections.named(&name)?;
            // An S3 connection with no bucket of its own lists the store's.
            let store = &ctx.config().store.url;
            let bucket = store
                .strip_prefix("s3://")
                .map(|rest| rest.split('/').next().unwrap_or(rest));
            match tasks::connection::check(connection, bucket).await {
                Ok(what) => {
                    println!("{name} ({}) works: {what}", connection.kind);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{name} ({}) failed: {e:#}", connection.kind);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
