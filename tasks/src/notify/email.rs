//! Mail over SMTP with lettre: `smtp://host:port` in plain text (a local relay, a test
//! sink), `smtp://...?starttls=true` upgraded with STARTTLS, `smtps://` TLS from the
//! start; the connection's user and password log in.

use anyhow::Context;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use orchestrator::Fatal;

use crate::connection::Connection;

/// Sends `body` to `to` through `connection`; returns the recipients.
pub async fn send(
    connection: &Connection,
    from: Option<&str>,
    to: &[String],
    subject: &str,
    body: &str,
) -> anyhow::Result<Vec<String>> {
    if to.is_empty() {
        return Err(Fatal("an email needs recipients: set `to`".into()).into());
    }
    let host = connection
        .host()
        .context("the smtp connection names no host")?;
    let from = from
        .map(String::from)
        .or_else(|| connection.param("from"))
        .or_else(|| connection.login().filter(|l| l.contains('@')))
        .ok_or_else(|| {
            Fatal("say who sends: `from` in the params, or the connection's `from` option".into())
        })?;
    let mailbox = |address: &str| -> anyhow::Result<Mailbox> {
        address
            .parse()
            .map_err(|e| Fatal(format!("{address:?} is no email address: {e}")).into())
    };
    let mut message = Message::builder().from(mailbox(&from)?).subject(subject);
    for recipient in to {
        message = message.to(mailbox(recipient)?);
    }
    let message = message
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .context("Failed to build the email")?;

    let tls = connection.scheme() == "smtps";
    let starttls = connection.param("starttls").is_some_and(|v| v == "true");
    let mut transport = if tls {
        AsyncSmtpTransport::<Tokio1Executor>::relay(host)?
    } else if starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
    };
    if let Some(port) = connection.port() {
        transport = transport.port(port);
    }
    if let Some(user) = connection.login() {
        let password = connection
            .password()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        transport = transport.credentials(Credentials::new(user, password));
    }
    transport
        .timeout(Some(std::time::Duration::from_secs(30)))
        .build()
        .send(message)
        .await
        .with_context(|| format!("{} did not take the email", connection.shown()))?;
    Ok(to.to_vec())
}
