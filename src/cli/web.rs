//! `setlist web` and the web options `standalone` shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use setlist_web::{AppState, Token, WebConfig};
use sqlx::PgPool;

use super::Ctx;

#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Where the web server listens (127.0.0.1 only, unless you say otherwise).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Serve reads (GET) without the API token.
    #[arg(long)]
    pub public_reads: bool,
}

/// The API token: SETLIST_API_TOKEN, else one made once and kept (mode 0600) in
/// .setlist/api-token, whose path, never its contents, is printed.
pub fn token() -> anyhow::Result<(Token, Option<PathBuf>)> {
    if let Ok(secret) = std::env::var("SETLIST_API_TOKEN")
        && !secret.is_empty()
    {
        return Ok((Token::new(&secret), None));
    }
    let path = PathBuf::from(".setlist/api-token");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok((Token::new(secret.trim()), Some(path)));
    }
    std::fs::create_dir_all(".setlist")?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    std::io::Write::write_all(&mut file.open(&path)?, secret.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((Token::new(&secret), Some(path)))
}

pub fn state(
    ctx: &Ctx,
    pool: PgPool,
    args: &WebArgs,
) -> anyhow::Result<(AppState, Option<PathBuf>)> {
    let (token, token_file) = token()?;
    let config = WebConfig {
        bind: args.bind,
        token,
        public_reads: args.public_reads,
        dags_dir: ctx.dags_dir.clone(),
    };
    let warehouse_url =
        std::env::var("SETLIST_WAREHOUSE_URL").unwrap_or_else(|_| ctx.database_url.clone());
    // The dashboard's queries run side by side, each a short aggregate: enough
    // memory to hash them instead of sorting on disk, and no JIT to compile them.
    let warehouse = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(&mut *conn, "SET work_mem = '64MB'; SET jit = off").await?;
                Ok(())
            })
        })
        .connect_lazy(&warehouse_url)
        .context("SETLIST_WAREHOUSE_URL is not a PostgreSQL URL")?;
    Ok((
        AppState::new(pool, warehouse, ctx.registry.clone(), config),
        token_file,
    ))
}

pub fn announce(args: &WebArgs, token_file: Option<&PathBuf>) {
    println!("  web          http://{}/ (API under /api/v1)", args.bind);
    match token_file {
        Some(path) => println!("  API token    in {}", path.display()),
        None => println!("  API token    from SETLIST_API_TOKEN"),
    }
}

pub async fn run(ctx: &Ctx, args: WebArgs) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool(8).await?;
    let (state, token_file) = state(ctx, pool, &args)?;
    println!("Setlist web is running (Ctrl-C stops it):");
    announce(&args, token_file.as_ref());
    let shutdown = super::services::shutdown_on_signal();
    setlist_web::serve(state, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
