//! The `dbt` task kind's warm dbt processes, against real dbt and PostgreSQL: a
//! command reuses the process the last one left idle, a cancelled command kills its
//! process (the next command starts a new one), and the log streams either way.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::TestDb;
use orchestrator::{LogSink, Task, TaskContext};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Runs `dbt show --inline SQL` as a task; returns its result and its log lines.
async fn show(
    db_name: &str,
    sql: &str,
    cancel: CancellationToken,
) -> (anyhow::Result<serde_json::Value>, Vec<String>) {
    let task: tasks::dbt::Dbt = serde_json::from_value(serde_json::json!({
        "command": "show",
        "args": ["--inline", sql],
        "project_dir": PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dbt"),
        "env": { "SETLIST_WAREHOUSE_DB": db_name },
        "dbt": common::dbt_binary(),
    }))
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ctx = TaskContext::adhoc("adhoc", "show", LogSink::new(tx), cancel);
    let result = task.run(&ctx).await;
    drop(ctx);
    let mut lines = Vec::new();
    while let Some(line) = rx.recv().await {
        lines.push(line.line);
    }
    (result, lines)
}

/// The warm process's pid and its command number, from the task's first log line.
fn warm_process(lines: &[String]) -> (u32, u32) {
    let line = lines
        .iter()
        .find(|l| l.starts_with("dbt runs in warm process "))
        .unwrap_or_else(|| panic!("no warm process named in {lines:#?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[5].parse().unwrap(), words[7].parse().unwrap())
}

fn alive(pid: u32) -> bool {
    // A killed child stays a zombie until reaped; its state letter says so.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn dbt_commands_reuse_a_warm_process_and_a_cancel_kills_it() {
    let db = TestDb::new().await;
    let db_name = db.url.rsplit('/').next().unwrap().to_string();

    let (first, log) = show(
        &db_name,
        "select 41 + 1 as answer",
        CancellationToken::new(),
    )
    .await;
    first.unwrap();
    let (pid, n) = warm_process(&log);
    assert_eq!(n, 1);
    // dbt's own log streamed into the task's, the query's answer included.
    assert!(log.iter().any(|l| l.contains("42")), "{log:#?}");

    let (second, log) = show(&db_name, "select 1 as one", CancellationToken::new()).await;
    second.unwrap();
    assert_eq!(warm_process(&log), (pid, 2), "the idle process is reused");

    // A command cancelled while it runs: the process is killed, not handed on.
    let cancel = CancellationToken::new();
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            cancel.cancel();
        })
    };
    let (stopped, log) = show(&db_name, "select pg_sleep(120) as slept", cancel).await;
    stopper.await.unwrap();
    let err = stopped.unwrap_err().to_string();
    assert!(err.contains("stopped"), "{err}");
    assert_eq!(warm_process(&log), (pid, 3));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!alive(pid), "warm process {pid} outlived its cancel");

    let (after, log) = show(&db_name, "select 2 as two", CancellationToken::new()).await;
    after.unwrap();
    let (new_pid, n) = warm_process(&log);
    assert_ne!(new_pid, pid);
    assert_eq!(n, 1);

    // A bad command fails with dbt's own words, and the process still serves.
    let (bad, log) = show(
        &db_name,
        "select * from no_such_table",
        CancellationToken::new(),
    )
    .await;
    let err = bad.unwrap_err().to_string();
    assert!(err.contains("no_such_table"), "{err}");
    assert_eq!(warm_process(&log), (new_pid, 2));
    let (again, log) = show(&db_name, "select 3 as three", CancellationToken::new()).await;
    again.unwrap();
    assert_eq!(warm_process(&log), (new_pid, 3));
}
