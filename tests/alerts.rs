//! Alerts against real receivers: a webhook server on a socket and the SMTP sink of
//! scripts/smtp.sh. An alert is written with the move that causes it, once per run,
//! task, event and connection; the sender says what failed, links the run and quotes
//! the log; a channel that fails never touches the run.

mod common;

use std::time::Duration;

use common::http::{Seen, serve};
use common::{TestDb, dag, run_to_end, worker_with};
use orchestrator::store::alerts;
use serde_json::json;
use tasks::alerts::Sender;

const LIMIT: Duration = Duration::from_secs(30);

fn maildir() -> String {
    std::env::var("SETLIST_SMTP_MAILDIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/setlist/smtp/maildir",
            std::env::var("HOME").unwrap()
        )
    })
}

fn smtp() -> String {
    common::tool_port(
        &std::env::var("SETLIST_SMTP").unwrap_or_else(|_| "127.0.0.1:18025".into()),
        "scripts/smtp.sh",
    )
}

/// The sender a scheduler process runs, with the test's connections.
fn sender(db: &TestDb) -> Sender {
    let settings = common::settings_with(db, &connections());
    Sender::new(
        db.pool.clone(),
        settings,
        Some("http://setlist.test".into()),
    )
}

static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn connections() -> Vec<(&'static str, String)> {
    let base = BASE.get().expect("the receiver is up");
    vec![
        ("hook", format!("webhook+{base}/hook")),
        ("refusing", format!("webhook+{base}/status/400")),
        ("busy", format!("webhook+{base}/status/503")),
        (
            "mail",
            format!(
                "smtp://{}?from=setlist@example.com&to=oncall@example.com",
                smtp()
            ),
        ),
    ]
}

#[tokio::test]
async fn failures_retries_and_the_run_reach_their_channels_once_with_the_error_and_the_log() {
    let db = TestDb::new().await;
    let seen = Seen::default();
    let _ = BASE.set(serve(seen.clone()).await);
    let w = worker_with(&db, &connections()).await;
    let d = dag(r#"
        [dag]
        id = "alerting"
        on_failure = ["hook", "refusing", "busy"]
        on_success = ["hook"]
        [[task]]
        id = "flaky"
        kind = "shell"
        retries = 1
        retry_delay = "50ms"
        on_retry = ["hook"]
        on_failure = ["mail"]
        params = { command = "echo loading day 1; echo 'disk full' >&2; exit 4" }
        [[task]]
        id = "fine"
        kind = "noop"
        on_success = ["hook"]
    "#);
    let run = orchestrator::store::runs::trigger(&db.pool, &d, json!({}), None)
        .await
        .unwrap();
    assert_eq!(run_to_end(&db, &w, run, LIMIT).await, "failed");
    let s = sender(&db);
    // The run's, the task's failure and retry, fine's success: six alerts, two refused now.
    assert_eq!(s.send_due().await.unwrap(), 4);
    let texts: Vec<String> = seen
        .posted
        .lock()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    let retry = texts
        .iter()
        .find(|t| t.contains("task flaky failed and will be retried"))
        .expect("the retry");
    assert!(
        retry.contains(&format!("http://setlist.test/runs/{run}/tasks/flaky")),
        "{retry}"
    );
    let failed = texts
        .iter()
        .find(|t| t.starts_with(&format!("[setlist] alerting: run {run} failed")))
        .expect("the run");
    assert!(
        failed.contains("flaky: command exited with code 4"),
        "{failed}"
    );
    // stdout and stderr are read side by side, so their order is the machine's.
    let log = &failed[failed.find("last log lines:\n").expect("the log")..];
    assert!(
        log.contains("loading day 1") && log.contains("disk full"),
        "{failed}"
    );
    assert!(
        texts.iter().any(|t| t.contains("task fine succeeded")),
        "{texts:?}"
    );
    let mail = std::fs::read_dir(format!("{}/new", maildir()))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .find(|m| m.contains(&format!("task flaky failed (run {run})")) && m.contains("alerting"))
        .expect("the mail");
    assert!(mail.contains("To: oncall@example.com"), "{mail}");

    // The failing channels: a refusal is not tried again; a 503 is, later; the run is
    // failed as it was, by its task, not by its alerts.
    let rows = alerts::of_run(&db.pool, run).await.unwrap();
    assert_eq!(rows.len(), 6);
    let refused = rows.iter().find(|r| r.connection == "refusing").unwrap();
    assert!(
        refused.sent_at.is_none() && refused.error.as_deref().unwrap().contains("answered 400"),
        "{refused:?}"
    );
    let busy = rows.iter().find(|r| r.connection == "busy").unwrap();
    assert!(
        busy.error.as_deref().unwrap().contains("answered 503"),
        "{busy:?}"
    );
    assert_eq!(
        s.send_due().await.unwrap(),
        0,
        "nothing is due again at once"
    );
    assert_eq!(common::run_state(&db.pool, run).await, "failed");

    // Cleared and failed again: its new tries are told of (a retry, a failure), the
    // run's failure, told already, is not told again.
    orchestrator::store::transitions::clear(&db.pool, run, &["flaky".into()], false)
        .await
        .unwrap();
    assert_eq!(run_to_end(&db, &w, run, LIMIT).await, "failed");
    let rows = alerts::of_run(&db.pool, run).await.unwrap();
    assert_eq!(rows.len(), 8, "{rows:?}");
    assert_eq!(s.send_due().await.unwrap(), 2);
    let runs_told = seen
        .posted
        .lock()
        .unwrap()
        .iter()
        .filter(|p| {
            p["text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("[setlist] alerting: run {run} failed"))
        })
        .count();
    assert_eq!(runs_told, 1);
}

#[tokio::test]
async fn an_alert_to_a_connection_the_configuration_lacks_is_a_load_error() {
    let registry = tasks::registry().with_connections(["hook".to_string()]);
    let errors = orchestrator::dag::parse_dag(
        std::path::Path::new("alerts.toml"),
        "[dag]\nid = \"a\"\non_failure = [\"hook\", \"pager\"]\n[[task]]\nid = \"t\"\nkind = \"noop\"\non_retry = [\"nobody\"]\n",
        &registry,
    )
    .unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "alerts.toml:3:23: `on_failure` in [dag] names no connection `pager` (defined: hook)",
            "alerts.toml:7:13: `on_retry` in task `t` names no connection `nobody` (defined: hook)",
        ]
    );
}
