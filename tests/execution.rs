//! Running tasks on a real PostgreSQL: retries and backoff, timeouts, trigger rules,
//! upstream_failed propagation, clearing and cancelling.

mod common;

use std::time::Duration;

use common::{TestDb, dag, drain, run_state, states, trigger, worker};
use orchestrator::TaskState;
use orchestrator::store::transitions;
use orchestrator::store::transitions::Finished;
use orchestrator::worker::Executed;

#[tokio::test]
async fn a_chain_runs_in_order_and_passes_outputs_downstream() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "chain"
        [[task]]
        id = "first"
        kind = "shell"
        params = { command = "echo one; echo two" }
        [[task]]
        id = "second"
        kind = "noop"
        depends_on = ["first"]
    "#);
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    let done: Vec<String> = drain(&w).await.into_iter().map(|e| e.task_id).collect();
    assert_eq!(done, ["first", "second"]);
    assert_eq!(run_state(&db.pool, run).await, "success");
    let output: serde_json::Value = sqlx::query_scalar(
        "SELECT output FROM setlist.task_instances WHERE run_id = $1 AND task_id = 'first'",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        output,
        serde_json::json!({ "exit_code": 0, "last_line": "two" })
    );
    let log: Vec<String> = sqlx::query_scalar(
        "SELECT l.line FROM setlist.attempt_logs l JOIN setlist.attempts a ON a.id = l.attempt_id
         JOIN setlist.task_instances t ON t.id = a.ti_id WHERE t.run_id = $1 AND t.task_id = 'first' ORDER BY seq",
    )
    .bind(run)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(log, ["one", "two"]);
}

#[tokio::test]
async fn a_failing_task_is_retried_with_exponential_backoff_then_fails() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "retries"
        [[task]]
        id = "flaky"
        kind = "shell"
        params = { command = "echo trying >&2; exit 3" }
        retries = 2
        retry_delay = "1s"
        retry_backoff = true
        max_retry_delay = "10s"
    "#);
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    let first = w.try_execute_one().await.unwrap().unwrap();
    assert_eq!(first.result, Finished::State(TaskState::UpForRetry));
    // Not due yet: the worker finds nothing to do.
    assert!(w.try_execute_one().await.unwrap().is_none());
    // The retry times are scheduled 1 s, then 2 s after each failure.
    let (retry_at, ended): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT t.retry_at, a.ended_at FROM setlist.task_instances t JOIN setlist.attempts a ON a.ti_id = t.id
         WHERE t.run_id = $1 AND a.try_number = 1",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let gap = (retry_at - ended).num_milliseconds();
    assert!(
        (950..=1100).contains(&gap),
        "first retry {gap} ms after the failure"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = w.try_execute_one().await.unwrap().unwrap();
    assert_eq!(
        (second.try_number, second.result),
        (2, Finished::State(TaskState::UpForRetry))
    );
    let gap: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM t.retry_at - a.ended_at)::float8 FROM setlist.task_instances t
         JOIN setlist.attempts a ON a.ti_id = t.id WHERE t.run_id = $1 AND a.try_number = 2",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        (1.95..=2.1).contains(&gap),
        "second retry {gap} s after the failure"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let third = w.try_execute_one().await.unwrap().unwrap();
    assert_eq!(
        (third.try_number, third.result),
        (3, Finished::State(TaskState::Failed))
    );
    assert_eq!(run_state(&db.pool, run).await, "failed");
    let errors: Vec<String> = sqlx::query_scalar(
        "SELECT a.error FROM setlist.attempts a JOIN setlist.task_instances t ON t.id = a.ti_id
         WHERE t.run_id = $1 ORDER BY a.try_number",
    )
    .bind(run)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(errors, vec!["command exited with code 3"; 3]);
}

#[tokio::test]
async fn a_timeout_stops_the_task_and_its_processes() {
    let db = TestDb::new().await;
    let pid_file =
        std::env::temp_dir().join(format!("setlist-timeout-{}", uuid::Uuid::new_v4().simple()));
    // The command starts a child that would outlive it and says the child's pid.
    let d = dag(&format!(
        r#"
        [dag]
        id = "timeout"
        [[task]]
        id = "slow"
        kind = "shell"
        timeout = "1s"
        params = {{ command = "sleep 600 & echo $! > {}; wait" }}
        "#,
        pid_file.display()
    ));
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    let done = w.try_execute_one().await.unwrap().unwrap();
    assert_eq!(done.result, Finished::State(TaskState::Failed));
    let (error, attempt_reason, task_reason): (String, String, String) = sqlx::query_as(
        "SELECT a.error, a.failure_reason::text, t.failure_reason::text
         FROM setlist.attempts a JOIN setlist.task_instances t ON t.id = a.ti_id WHERE t.run_id = $1",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(error, "timed out after 1s");
    assert_eq!(
        (attempt_reason.as_str(), task_reason.as_str()),
        ("timeout", "timeout")
    );
    // The event that shows the kill: the child process is gone (or a zombie no one
    // has reaped yet), within a deadline.
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the command wrote its child's pid")
        .trim()
        .parse()
        .unwrap();
    let _ = std::fs::remove_file(&pid_file);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'));
        if !alive {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command's child {pid} kept running after its timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the notification that run `run` ended.
async fn wait_for_end(ends: &mut sqlx::postgres::PgListener, run: i64) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n = ends.recv().await.unwrap();
            if n.payload() == run.to_string() {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("run {run} did not end within 30 s"));
}

/// A kind that panics, to prove a panic fails its attempt and nothing else.
#[derive(Debug, serde::Deserialize)]
struct Panics {}

#[async_trait::async_trait]
impl orchestrator::Task for Panics {
    async fn run(&self, _ctx: &orchestrator::TaskContext) -> anyhow::Result<serde_json::Value> {
        panic!("the tape snapped")
    }
}

impl orchestrator::TaskConfig for Panics {}

#[tokio::test]
async fn a_task_that_panics_fails_its_attempt_and_the_worker_goes_on() {
    use std::sync::Arc;

    use orchestrator::worker::{Worker, WorkerConfig};
    let db = TestDb::new().await;
    let mut kinds = tasks::registry();
    kinds.register::<Panics>("panics");
    let kinds = Arc::new(kinds);
    let parse = |toml: &str| {
        orchestrator::dag::parse_dag(std::path::Path::new("panics.toml"), toml, &kinds)
            .expect("the test DAG is valid")
    };
    let panicking = parse(
        r#"
        [dag]
        id = "panicking"
        [[task]]
        id = "snap"
        kind = "panics"
        retries = 1
        retry_delay = "0s"
        [[task]]
        id = "after"
        kind = "noop"
        depends_on = ["snap"]
        "#,
    );
    let healthy = parse(
        r#"
        [dag]
        id = "healthy"
        [[task]]
        id = "fine"
        kind = "noop"
        "#,
    );
    // Ends of runs come as notifications on the scheduler's channel.
    let mut ends = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .unwrap();
    ends.listen(orchestrator::store::SCHEDULER_CHANNEL)
        .await
        .unwrap();
    let worker = Arc::new(
        Worker::register(db.pool.clone(), kinds.clone(), WorkerConfig::default())
            .await
            .unwrap(),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(worker.clone().run(shutdown.clone()));
    let first = trigger(&db, &panicking).await;
    wait_for_end(&mut ends, first).await;
    assert_eq!(run_state(&db.pool, first).await, "failed");
    let attempts: Vec<(i32, String, String)> = sqlx::query_as(
        "SELECT a.try_number, a.failure_reason::text, a.error FROM setlist.attempts a
         JOIN setlist.task_instances t ON t.id = a.ti_id WHERE t.run_id = $1 ORDER BY a.try_number",
    )
    .bind(first)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let panicked = (
        "error".to_string(),
        "panicked: the tape snapped".to_string(),
    );
    assert_eq!(
        attempts,
        vec![
            (1, panicked.0.clone(), panicked.1.clone()),
            (2, panicked.0.clone(), panicked.1.clone())
        ],
        "a panic is an error like any other, retried while tries remain"
    );
    let log: Vec<String> = sqlx::query_scalar(
        "SELECT l.line FROM setlist.attempt_logs l JOIN setlist.attempts a ON a.id = l.attempt_id
         JOIN setlist.task_instances t ON t.id = a.ti_id
         WHERE t.run_id = $1 AND a.try_number = 1 ORDER BY l.seq",
    )
    .bind(first)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        log.iter()
            .any(|l| l == "The task panicked: the tape snapped"),
        "the panic's message is in the attempt's log: {log:?}"
    );
    assert_eq!(states(&db.pool, first).await["after"], "upstream_failed");
    // The same worker, still running, takes the next run.
    let second = trigger(&db, &healthy).await;
    wait_for_end(&mut ends, second).await;
    assert_eq!(run_state(&db.pool, second).await, "success");
    assert!(!running.is_finished(), "the worker kept running");
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

const RULES: &str = r#"
    [dag]
    id = "rules"
    [[task]]
    id = "ok"
    kind = "noop"
    [[task]]
    id = "boom"
    kind = "shell"
    params = { command = "exit 1" }
    [[task]]
    id = "needs_both"
    kind = "noop"
    depends_on = ["ok", "boom"]
    [[task]]
    id = "after_needs_both"
    kind = "noop"
    depends_on = ["needs_both"]
    [[task]]
    id = "cleanup"
    kind = "noop"
    depends_on = ["ok", "boom"]
    trigger_rule = "all_done"
    [[task]]
    id = "alert"
    kind = "noop"
    depends_on = ["ok", "boom"]
    trigger_rule = "one_failed"
    [[task]]
    id = "only_on_failure_of_ok"
    kind = "noop"
    depends_on = ["ok"]
    trigger_rule = "one_failed"
    [[task]]
    id = "after_skipped"
    kind = "noop"
    depends_on = ["only_on_failure_of_ok"]
"#;

#[tokio::test]
async fn trigger_rules_and_upstream_failed_propagation() {
    let db = TestDb::new().await;
    let run = trigger(&db, &dag(RULES)).await;
    drain(&worker(&db).await).await;
    let got = states(&db.pool, run).await;
    let expect = [
        ("ok", "success"),
        ("boom", "failed"),
        ("needs_both", "upstream_failed"),
        ("after_needs_both", "upstream_failed"),
        ("cleanup", "success"),
        ("alert", "success"),
        ("only_on_failure_of_ok", "skipped"),
        ("after_skipped", "skipped"),
    ];
    for (task, state) in expect {
        assert_eq!(got[task], state, "state of {task}");
    }
    // A leaf ended upstream_failed, so the run failed.
    assert_eq!(run_state(&db.pool, run).await, "failed");
}

#[tokio::test]
async fn clearing_a_task_reruns_it_and_its_downstream_only() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "clear"
        [[task]]
        id = "a"
        kind = "noop"
        [[task]]
        id = "b"
        kind = "noop"
        depends_on = ["a"]
        [[task]]
        id = "c"
        kind = "noop"
        depends_on = ["b"]
        [[task]]
        id = "side"
        kind = "noop"
        depends_on = ["a"]
    "#);
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    assert_eq!(drain(&w).await.len(), 4);
    assert_eq!(run_state(&db.pool, run).await, "success");

    let cleared = transitions::clear(&db.pool, run, &["b".to_string()], true)
        .await
        .unwrap();
    assert_eq!(cleared, ["b", "c"]);
    assert_eq!(run_state(&db.pool, run).await, "running");
    let rerun: Vec<(String, i32)> = drain(&w)
        .await
        .into_iter()
        .map(|e: Executed| (e.task_id, e.try_number))
        .collect();
    assert_eq!(rerun, [("b".to_string(), 2), ("c".to_string(), 2)]);
    assert_eq!(run_state(&db.pool, run).await, "success");

    // Without --downstream only the task itself runs again.
    transitions::clear(&db.pool, run, &["a".to_string()], false)
        .await
        .unwrap();
    let rerun: Vec<String> = drain(&w).await.into_iter().map(|e| e.task_id).collect();
    assert_eq!(rerun, ["a"]);
}

#[tokio::test]
async fn clearing_rejects_unknown_and_running_tasks() {
    let db = TestDb::new().await;
    let d = dag("[dag]\nid = \"c\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n");
    let run = trigger(&db, &d).await;
    let err = transitions::clear(&db.pool, run, &["nope".to_string()], false)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), format!("run {run} has no task `nope`"));
    let w = worker(&db).await;
    let _claimed = w.claim().await.unwrap().unwrap();
    let err = transitions::clear(&db.pool, run, &["a".to_string()], false)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("task `a` of run {run} is running; cancel it first")
    );
}

#[tokio::test]
async fn cancelling_a_running_task_fails_it_without_a_retry() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "cancel"
        [[task]]
        id = "long"
        kind = "shell"
        retries = 3
        retry_delay = "1s"
        params = { command = "sleep 30" }
    "#);
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    let claimed = w.claim().await.unwrap().unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let pool = db.pool.clone();
    let t = token.clone();
    // What the worker's LISTEN loop does on a cancel notification.
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        transitions::request_cancel(&pool, run, "long")
            .await
            .unwrap();
        t.cancel();
    });
    let done = w.execute(claimed, token).await.unwrap();
    canceller.await.unwrap();
    assert_eq!(done.result, Finished::State(TaskState::Failed));
    assert_eq!(run_state(&db.pool, run).await, "failed");
    let err = transitions::request_cancel(&db.pool, run, "long")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("task `long` of run {run} is failed, not running")
    );
}

#[tokio::test]
async fn a_worker_without_the_kind_leaves_the_task_to_one_that_has_it() {
    let db = TestDb::new().await;
    let d = dag("[dag]\nid = \"k\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\nretries = 3\n");
    let run = trigger(&db, &d).await;
    sqlx::query("UPDATE setlist.task_instances SET kind = 'gone' WHERE run_id = $1")
        .bind(run)
        .execute(&db.pool)
        .await
        .unwrap();
    // Workers advertise their kinds and claim only those: the task waits, it does not fail.
    assert!(worker(&db).await.try_execute_one().await.unwrap().is_none());
    assert_eq!(states(&db.pool, run).await["a"], "queued");
}

#[tokio::test]
async fn clearing_a_failed_task_with_its_downstream_lets_the_run_succeed() {
    let db = TestDb::new().await;
    let marker =
        std::env::temp_dir().join(format!("setlist-clear-{}", uuid::Uuid::new_v4().simple()));
    let d = dag(&format!(
        r#"
        [dag]
        id = "fix_and_clear"
        [[task]]
        id = "ok"
        kind = "noop"
        [[task]]
        id = "needs_file"
        kind = "shell"
        params = {{ command = "test -f {}" }}
        [[task]]
        id = "join"
        kind = "noop"
        depends_on = ["ok", "needs_file"]
        "#,
        marker.display()
    ));
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    drain(&w).await;
    assert_eq!(states(&db.pool, run).await["join"], "upstream_failed");
    assert_eq!(run_state(&db.pool, run).await, "failed");

    std::fs::write(&marker, "").unwrap();
    transitions::clear(&db.pool, run, &["needs_file".to_string()], true)
        .await
        .unwrap();
    let rerun: Vec<String> = drain(&w).await.into_iter().map(|e| e.task_id).collect();
    assert_eq!(rerun, ["needs_file", "join"]);
    assert_eq!(run_state(&db.pool, run).await, "success");
}

#[tokio::test]
async fn templated_params_render_with_the_run_s_context_and_an_undefined_value_fails_clearly() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "templated"
        params = { table = "plays", limit = 10 }
        [[task]]
        id = "extract"
        kind = "shell"
        params = { command = "echo 42" }
        [[task]]
        id = "report"
        kind = "shell"
        depends_on = ["extract"]
        params = { command = "echo {{ ds }} {{ logical_date | date('%H:%M') }} {{ params.table }}:{{ params.limit }} {{ conf.region }} {{ upstream.extract.output.last_line }} try {{ try_number }}" }
        [[task]]
        id = "strict"
        kind = "shell"
        depends_on = ["extract"]
        params = { command = "echo {{ conf.missing }}" }
    "#);
    let at = chrono::DateTime::parse_from_rfc3339("2026-03-01T06:30:00Z")
        .unwrap()
        .to_utc();
    let run = orchestrator::store::runs::trigger(
        &db.pool,
        &d,
        serde_json::json!({ "region": "EU", "limit": 5 }),
        Some(at),
    )
    .await
    .unwrap();
    common::start_runs(&db.pool).await;
    drain(&worker(&db).await).await;
    let log = |task: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT l.line FROM setlist.attempt_logs l JOIN setlist.attempts a ON a.id = l.attempt_id
                 JOIN setlist.task_instances t ON t.id = a.ti_id WHERE t.run_id = $1 AND t.task_id = $2 ORDER BY seq",
            )
            .bind(run)
            .bind(task)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    // The conf replaces a DAG param of its name; the rendered params open the log.
    let report = log("report").await;
    assert_eq!(
        report.last().unwrap(),
        "2026-03-01 06:30 plays:5 EU 42 try 1"
    );
    assert!(
        report[0].starts_with(
            r#"Rendered params: {"command":"echo 2026-03-01 06:30 plays:5 EU 42 try 1""#
        ),
        "{report:?}"
    );
    let states = states(&db.pool, run).await;
    assert_eq!(states["report"], "success");
    assert_eq!(states["strict"], "failed");
    let (reason, message): (String, String) = sqlx::query_as(
        "SELECT a.failure_reason::text, a.error FROM setlist.attempts a JOIN setlist.task_instances t ON t.id = a.ti_id
         WHERE t.run_id = $1 AND t.task_id = 'strict'",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(reason, "invalid");
    assert!(
        message.starts_with("params.command: template: undefined value"),
        "{message}"
    );
}
