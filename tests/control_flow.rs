//! Branching, short circuits and waits on a real PostgreSQL: a branch runs only the
//! downstream tasks it names and trigger rules carry the skip on; a short circuit
//! skips everything below it; a wait whose condition is unmet is `waiting`, holds no
//! worker, and continues its try (one attempt, one log) at its next poke.

mod common;

use std::time::Duration;

use common::{TestDb, dag, drain, error, output, run_state, states, trigger, worker};
use orchestrator::TaskState;
use orchestrator::store::transitions::{self, Finished};
use serde_json::json;

fn expect(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn a_branch_runs_the_tasks_it_names_and_skips_the_others_down_to_the_join() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "branching"
        params = { mode = "full" }
        [[task]]
        id = "choose"
        kind = "branch"
        params = { follow = "{{ 'full_load' if params.mode == 'full' else 'incremental' }}" }
        [[task]]
        id = "full_load"
        kind = "noop"
        depends_on = ["choose"]
        [[task]]
        id = "incremental"
        kind = "noop"
        depends_on = ["choose"]
        [[task]]
        id = "after_incremental"
        kind = "noop"
        depends_on = ["incremental"]
        [[task]]
        id = "join_strict"
        kind = "noop"
        depends_on = ["full_load", "incremental"]
        [[task]]
        id = "join"
        kind = "noop"
        depends_on = ["full_load", "incremental"]
        trigger_rule = "none_failed_min_one_success"
    "#);
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    let ran: Vec<String> = drain(&w).await.into_iter().map(|e| e.task_id).collect();
    assert_eq!(ran, ["choose", "full_load", "join"]);
    assert_eq!(
        states(&db.pool, run).await,
        expect(&[
            ("choose", "success"),
            ("full_load", "success"),
            ("incremental", "skipped"),
            ("after_incremental", "skipped"),
            ("join_strict", "skipped"),
            ("join", "success"),
        ])
    );
    assert_eq!(
        output(&db, run, "choose").await,
        json!({ "follow": ["full_load"] })
    );
    // A run whose leaves succeeded or were skipped succeeded.
    assert_eq!(run_state(&db.pool, run).await, "success");
}

#[tokio::test]
async fn any_kind_branches_with_branch_true_and_a_wrong_choice_fails_without_retries() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "python_branch"
        [[task]]
        id = "pick"
        kind = "python"
        branch = true
        params = { code = "import json\nprint('thinking')\nprint(json.dumps({'follow': ['b'], 'why': 'b is due'}))" }
        [[task]]
        id = "a"
        kind = "noop"
        depends_on = ["pick"]
        [[task]]
        id = "b"
        kind = "noop"
        depends_on = ["pick"]
        [[task]]
        id = "bad"
        kind = "branch"
        retries = 3
        params = { follow = "elsewhere" }
        [[task]]
        id = "c"
        kind = "noop"
        depends_on = ["bad"]
    "#);
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    drain(&w).await;
    assert_eq!(
        states(&db.pool, run).await,
        expect(&[
            ("pick", "success"),
            ("a", "skipped"),
            ("b", "success"),
            ("bad", "failed"),
            ("c", "upstream_failed"),
        ])
    );
    assert_eq!(
        output(&db, run, "pick").await,
        json!({ "follow": ["b"], "why": "b is due" })
    );
    assert_eq!(
        error(&db, run, "bad").await,
        "the branch chose `elsewhere`, which is not a direct downstream task of `bad` (those are: c)"
    );
}

#[tokio::test]
async fn a_branching_task_without_downstream_tasks_is_refused_at_load() {
    let errors = orchestrator::dag::parse_dag(
        std::path::Path::new("lonely.toml"),
        "[dag]\nid = \"lonely\"\n[[task]]\nid = \"pick\"\nkind = \"noop\"\nbranch = true\n",
        &common::registry(),
    )
    .unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "lonely.toml:6:10: task `pick` branches but no task depends on it: a branch chooses among its downstream tasks"
        ]
    );
}

#[tokio::test]
async fn a_short_circuit_skips_everything_below_or_only_its_direct_downstream() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "circuits"
        [[task]]
        id = "has_rows"
        kind = "short_circuit"
        params = { condition = "{{ 0 > 1 }}" }
        [[task]]
        id = "load"
        kind = "noop"
        depends_on = ["has_rows"]
        [[task]]
        id = "cleanup"
        kind = "noop"
        depends_on = ["load"]
        trigger_rule = "all_done"
        [[task]]
        id = "soft"
        kind = "short_circuit"
        params = { condition = false, ignore_downstream_trigger_rules = false }
        [[task]]
        id = "report"
        kind = "noop"
        depends_on = ["soft"]
        [[task]]
        id = "always"
        kind = "noop"
        depends_on = ["report"]
        trigger_rule = "all_done"
        [[task]]
        id = "open"
        kind = "short_circuit"
        params = { condition = "yes" }
        [[task]]
        id = "go"
        kind = "noop"
        depends_on = ["open"]
    "#);
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    drain(&w).await;
    assert_eq!(
        states(&db.pool, run).await,
        expect(&[
            ("has_rows", "success"),
            ("load", "skipped"),
            // Everything below, whatever its trigger rule.
            ("cleanup", "skipped"),
            ("soft", "success"),
            ("report", "skipped"),
            // Only the direct downstream: the all_done task below runs.
            ("always", "success"),
            ("open", "success"),
            ("go", "success"),
        ])
    );
    assert_eq!(
        output(&db, run, "has_rows").await,
        json!({ "condition": false })
    );
}

/// The attempts of a task: (try, state, pokes).
async fn attempts(db: &TestDb, run: i64, task: &str) -> Vec<(i32, String, i32)> {
    sqlx::query_as(
        "SELECT a.try_number, a.state::text, a.pokes FROM setlist.attempts a
         JOIN setlist.task_instances t ON t.id = a.ti_id
         WHERE t.run_id = $1 AND t.task_id = $2 ORDER BY a.try_number",
    )
    .bind(run)
    .bind(task)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_wait_releases_its_worker_between_pokes_and_continues_its_try() {
    let db = TestDb::new().await;
    let target = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let d = dag(&format!(
        r#"
        [dag]
        id = "waits"
        [[task]]
        id = "until"
        kind = "wait_until"
        params = {{ target_time = "{}", poke_interval = "1s" }}
        [[task]]
        id = "after"
        kind = "noop"
        depends_on = ["until"]
    "#,
        target.to_rfc3339()
    ));
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    let first = w.try_execute_one().await.unwrap().unwrap();
    assert_eq!(first.result, Finished::State(TaskState::Waiting));
    assert_eq!(states(&db.pool, run).await["until"], "waiting");
    // It holds no worker: nothing is running, no worker owns it, and nothing is due.
    let (running, owner): (i64, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'running'), max(worker_id::text)::uuid
         FROM setlist.task_instances WHERE run_id = $1",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((running, owner), (0, None));
    assert!(w.try_execute_one().await.unwrap().is_none());
    assert_eq!(
        attempts(&db, run, "until").await,
        [(1, "waiting".into(), 1)]
    );
    // Poke until the time has come: each poke continues try 1.
    let mut pokes = 1;
    loop {
        let due: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "SELECT retry_at FROM setlist.task_instances WHERE run_id = $1 AND task_id = 'until'",
        )
        .bind(run)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        tokio::time::sleep((due - chrono::Utc::now()).to_std().unwrap_or_default()).await;
        let next = w.try_execute_one().await.unwrap().unwrap();
        pokes += 1;
        assert_eq!(next.try_number, 1);
        if next.result == Finished::State(TaskState::Success) {
            break;
        }
        assert_eq!(next.result, Finished::State(TaskState::Waiting));
        assert!(pokes < 5, "still waiting after {pokes} pokes");
    }
    assert!(chrono::Utc::now() >= target);
    assert_eq!(
        attempts(&db, run, "until").await,
        [(1, "success".into(), pokes)]
    );
    drain(&w).await;
    assert_eq!(run_state(&db.pool, run).await, "success");
    // One log for the try: a line per unmet poke.
    let log = orchestrator::store::logs::attempt(&db.pool, run, "until", None)
        .await
        .unwrap();
    assert_eq!(log.len() as i32, pokes - 1, "{log:?}");
    assert!(
        log[0].line.starts_with("Not yet: waiting until "),
        "{}",
        log[0].line
    );
}

#[tokio::test]
async fn a_wait_fails_at_its_timeout_and_a_cleared_wait_leaves_no_attempt_waiting() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "too_long"
        [[task]]
        id = "never"
        kind = "wait_until"
        params = { target_time = "2999-01-01T00:00:00Z", poke_interval = "1s", timeout = "1s" }
        [[task]]
        id = "held"
        kind = "wait_until"
        params = { target_time = "2999-01-01T00:00:00Z" }
    "#);
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    drain(&w).await;
    let held = states(&db.pool, run).await;
    assert_eq!(
        (held["never"].as_str(), held["held"].as_str()),
        ("waiting", "waiting")
    );
    orchestrator::store::transitions::clear(&db.pool, run, &["held".into()], false)
        .await
        .unwrap();
    assert_eq!(attempts(&db, run, "held").await, [(1, "failed".into(), 1)]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ended = w.try_execute_one().await.unwrap().unwrap();
    assert_eq!(
        (ended.task_id.as_str(), ended.result),
        ("never", Finished::State(TaskState::Failed))
    );
    let e = error(&db, run, "never").await;
    assert!(
        e.starts_with("gave up after waiting 1s (timeout 1s): waiting until 2999-01-01"),
        "{e}"
    );
}

#[tokio::test]
async fn a_waiting_task_is_cancelled_at_once_and_its_downstream_does_not_run() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "cancel_wait"
        [[task]]
        id = "wait"
        kind = "wait_until"
        retries = 3
        params = { target_time = "2999-01-01T00:00:00Z" }
        [[task]]
        id = "after"
        kind = "noop"
        depends_on = ["wait"]
    "#);
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    drain(&w).await;
    assert_eq!(states(&db.pool, run).await["wait"], "waiting");
    transitions::request_cancel(&db.pool, run, "wait")
        .await
        .unwrap();
    assert_eq!(
        states(&db.pool, run).await,
        expect(&[("wait", "failed"), ("after", "upstream_failed")])
    );
    assert_eq!(run_state(&db.pool, run).await, "failed");
    let (reason, attempt): (String, String) = sqlx::query_as(
        "SELECT t.failure_reason::text, a.state::text FROM setlist.task_instances t
         JOIN setlist.attempts a ON a.ti_id = t.id WHERE t.run_id = $1 AND t.task_id = 'wait'",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((reason.as_str(), attempt.as_str()), ("cancelled", "failed"));
    // No retry comes: nothing is due.
    assert!(w.try_execute_one().await.unwrap().is_none());
}

#[tokio::test]
async fn workers_claim_the_highest_priority_first_and_a_backfill_after_live_runs() {
    let db = TestDb::new().await;
    let low = dag(
        "[dag]\nid = \"low\"\npriority = 1\n[[task]]\nid = \"a\"\nkind = \"noop\"\n[[task]]\nid = \"b\"\nkind = \"noop\"\npriority = 20\n",
    );
    let high = dag("[dag]\nid = \"high\"\n[[task]]\nid = \"c\"\nkind = \"noop\"\npriority = 10\n");
    let daily = dag(
        "[dag]\nid = \"daily\"\nschedule = \"@daily\"\nstart_date = 2026-01-01\n[[task]]\nid = \"d\"\nkind = \"noop\"\n",
    );
    trigger(&db, &low).await;
    trigger(&db, &high).await;
    let from = "2026-01-01T00:00:00Z".parse().unwrap();
    let to = "2026-01-03T00:00:00Z".parse().unwrap();
    orchestrator::store::dags::upsert(&db.pool, &daily)
        .await
        .unwrap();
    let backfill = orchestrator::store::runs::backfill(&db.pool, &daily, from, to)
        .await
        .unwrap();
    assert_eq!(backfill.created.len(), 2);
    // A live run of the same DAG, created after the backfill's.
    trigger(&db, &daily).await;
    let w = worker(&db).await;
    let order: Vec<(String, i64)> = drain(&w)
        .await
        .into_iter()
        .map(|e| (e.task_id, e.run_id))
        .collect();
    let tasks: Vec<&str> = order.iter().map(|(t, _)| t.as_str()).collect();
    // b (20), c (10), a (1, its DAG's), the live d (0), then the backfill's two (-100).
    assert_eq!(tasks, ["b", "c", "a", "d", "d", "d"]);
    assert!(
        !backfill.created.contains(&order[3].1),
        "the live run came first"
    );
}

/// A worker running in the background with `concurrency` slots, stopped when dropped.
struct Background {
    stop: tokio_util::sync::CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Background {
    async fn start(db: &TestDb, concurrency: usize) -> Self {
        let w = std::sync::Arc::new(
            orchestrator::worker::Worker::register(
                db.pool.clone(),
                common::registry(),
                orchestrator::worker::WorkerConfig {
                    concurrency,
                    cancel_grace: Duration::from_secs(2),
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let handle = tokio::spawn(w.run(stop.clone()));
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Waits until task `task` of `run` is running.
async fn until_running(db: &TestDb, run: i64, task: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while states(&db.pool, run).await[task] != "running" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{task} never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cancelled_run_stops_its_running_tasks_fails_the_rest_and_ends_cancelled() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "to_cancel"
        [[task]]
        id = "slow"
        kind = "shell"
        retries = 2
        params = { command = "sleep 30" }
        [[task]]
        id = "after"
        kind = "noop"
        depends_on = ["slow"]
        [[task]]
        id = "waiting_for_a_slot"
        kind = "shell"
        params = { command = "sleep 30" }
        [[task]]
        id = "cleanup"
        kind = "noop"
        depends_on = ["slow"]
        trigger_rule = "all_done"
    "#);
    let run = trigger(&db, &d).await;
    let _worker = Background::start(&db, 1).await;
    until_running(&db, run, "slow").await;
    let done = orchestrator::store::cancel::cancel_run(&db.pool, run, "the data was wrong")
        .await
        .unwrap();
    assert_eq!(done.stopping, ["slow"]);
    assert_eq!(done.state, orchestrator::RunState::Running);
    assert_eq!(
        common::wait_for_run(&db.pool, "to_cancel", Duration::from_secs(20)).await,
        "cancelled"
    );
    assert_eq!(
        states(&db.pool, run).await,
        expect(&[
            ("slow", "failed"),
            ("after", "failed"),
            ("waiting_for_a_slot", "failed"),
            // Nothing below starts once the run is cancelled, whatever its trigger rule.
            ("cleanup", "failed"),
        ])
    );
    let (reason, tries): (String, i32) = sqlx::query_as(
        "SELECT failure_reason::text, try_number FROM setlist.task_instances WHERE run_id = $1 AND task_id = 'slow'",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((reason.as_str(), tries), ("cancelled", 1));
    let (r, _) = orchestrator::store::runs::get(&db.pool, run).await.unwrap();
    assert_eq!(r.end_reason.as_deref(), Some("the data was wrong"));
    // A run that ended cannot be cancelled again.
    let again = orchestrator::store::cancel::cancel_run(&db.pool, run, "twice").await;
    assert!(
        again
            .unwrap_err()
            .to_string()
            .contains("is cancelled already")
    );
}

#[tokio::test]
async fn a_run_outliving_its_dagrun_timeout_is_cancelled_with_that_reason() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "bounded"
        dagrun_timeout = "1s"
        [[task]]
        id = "forever"
        kind = "shell"
        params = { command = "sleep 30" }
    "#);
    let run = trigger(&db, &d).await;
    let _worker = Background::start(&db, 1).await;
    until_running(&db, run, "forever").await;
    // Nothing is late before its time.
    assert_eq!(
        orchestrator::store::cancel::time_out_runs(&db.pool)
            .await
            .unwrap(),
        0
    );
    let started: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT started_at FROM setlist.dag_runs WHERE id = $1")
            .bind(run)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let due = started + chrono::Duration::milliseconds(1050);
    tokio::time::sleep((due - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    assert_eq!(
        orchestrator::store::cancel::time_out_runs(&db.pool)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        common::wait_for_run(&db.pool, "bounded", Duration::from_secs(20)).await,
        "cancelled"
    );
    let (r, _) = orchestrator::store::runs::get(&db.pool, run).await.unwrap();
    assert_eq!(
        r.end_reason.as_deref(),
        Some("dagrun_timeout: still going after 1s")
    );
    let reason: String = sqlx::query_scalar(
        "SELECT failure_reason::text FROM setlist.task_instances WHERE run_id = $1",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(reason, "cancelled");
}

#[tokio::test]
async fn a_run_cancelled_while_its_mapped_task_maps_starts_no_instance_and_a_clear_runs_it_again() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "cancel_map"
        [[task]]
        id = "each"
        kind = "noop"
        map_over = [1, 2, 3]
    "#);
    let run = trigger(&db, &d).await;
    let w = worker(&db).await;
    // The worker holds the mapped task, about to map it, when the run is cancelled.
    let claimed = w.claim().await.unwrap().expect("the mapped task");
    orchestrator::store::cancel::cancel_run(&db.pool, run, "not today")
        .await
        .unwrap();
    let done = w
        .execute(claimed, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.result, Finished::State(TaskState::Failed));
    assert_eq!(states(&db.pool, run).await, expect(&[("each", "failed")]));
    assert_eq!(run_state(&db.pool, run).await, "cancelled");
    // Cleared, the run runs again, is no longer cancelled, and succeeds.
    transitions::clear(&db.pool, run, &["each".into()], false)
        .await
        .unwrap();
    drain(&w).await;
    drain(&w).await;
    assert_eq!(run_state(&db.pool, run).await, "success");
    let (r, _) = orchestrator::store::runs::get(&db.pool, run).await.unwrap();
    assert_eq!(r.end_reason, None);
}
