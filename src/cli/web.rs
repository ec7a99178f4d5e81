//! `setlist web`.

use std::process::ExitCode;

use setlist::{App, Services};

use super::Ctx;

/// Prints where the UI is and how to get in: the token Setlist made itself, on a
/// loopback address (it is local), so a newcomer can log in without reading a file;
/// elsewhere only the file that holds it; a token given in the settings never.
pub fn announce(app: &App) -> anyhow::Result<()> {
    let bind = app.config.web.bind;
    let token = app.api_token()?;
    println!("  web          http://{bind}/ (API under /api/v1)");
    match (&token.file, bind.ip().is_loopback()) {
        (Some(path), true) => println!(
            "  log in with  {}   (the API token, kept in {})",
            token.secret.expose(),
            path.display()
        ),
        (Some(path), false) => println!("  API token    in {}", path.display()),
        (None, _) => println!("  API token    from web.api_token (SETLIST_API_TOKEN)"),
    }
    Ok(())
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let app = ctx.app(8).await?;
    println!("Setlist web is running (Ctrl-C stops it):");
    announce(&app)?;
    let services = Services {
        web: true,
        ..Services::default()
    };
    app.run(services, setlist::shutdown_on_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
