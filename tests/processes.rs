//! Real `setlist` processes sharing one state store: a scheduler and two workers,
//! a worker killed with SIGKILL mid-task, and two schedulers at once.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Procs, TestDb, spawn_setlist, trigger_via_cli};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn dag_dir(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("setlist-proc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

/// Polls `query` (a single bigint or boolean-as-bigint) until it returns `want`.
async fn wait_for(db: &TestDb, query: &str, want: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: i64 = sqlx::query_scalar(query).fetch_one(&db.pool).await.unwrap();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}: {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fan_out(width: usize) -> String {
    let mut s = String::from("[dag]\nid = \"fan\"\n[[task]]\nid = \"start\"\nkind = \"noop\"\n");
    for i in 0..width {
        s += &format!(
            "[[task]]\nid = \"m{i}\"\nkind = \"shell\"\ndepends_on = [\"start\"]\nparams = {{ command = \"sleep 0.2\" }}\n"
        );
    }
    let all: Vec<String> = (0..width).map(|i| format!("\"m{i}\"")).collect();
    s += &format!(
        "[[task]]\nid = \"end\"\nkind = \"noop\"\ndepends_on = [{}]\n",
        all.join(", ")
    );
    s
}

#[tokio::test]
async fn a_scheduler_and_two_worker_processes_run_every_task_exactly_once() {
    let db = TestDb::new().await;
    let dir = dag_dir(&[("fan.toml", &fan_out(24))]);
    let _procs = Procs(vec![
        spawn_setlist(&db, &dir, &["scheduler", "--housekeeping-interval", "1s"]),
        spawn_setlist(&db, &dir, &["worker", "--concurrency", "4"]),
        spawn_setlist(&db, &dir, &["worker", "--concurrency", "4"]),
    ]);
    wait_for(
        &db,
        "SELECT count(*) FROM setlist.workers WHERE state = 'active'",
        2,
        "two workers",
    )
    .await;
    trigger_via_cli(&db, &dir, "fan");
    wait_for(
        &db,
        "SELECT count(*) FROM setlist.dag_runs WHERE state = 'success'",
        1,
        "the run to succeed",
    )
    .await;

    let (attempts, distinct, tis): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM setlist.attempts), (SELECT count(DISTINCT ti_id) FROM setlist.attempts),
                (SELECT count(*) FROM setlist.task_instances)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (attempts, distinct, tis),
        (26, 26, 26),
        "one attempt per task instance"
    );
    let per_worker: Vec<i64> =
        sqlx::query_scalar("SELECT count(*) FROM setlist.attempts GROUP BY worker_id ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        per_worker.len(),
        2,
        "both workers took work: {per_worker:?}"
    );
}

#[tokio::test]
async fn a_worker_killed_mid_task_is_reaped_and_the_retry_completes_the_run() {
    let db = TestDb::new().await;
    let dir = dag_dir(&[(
        "long.toml",
        r#"
        [dag]
        id = "long"
        [[task]]
        id = "work"
        kind = "shell"
        retries = 1
        retry_delay = "1s"
        params = { command = "sleep 3" }
        [[task]]
        id = "after"
        kind = "noop"
        depends_on = ["work"]
        "#,
    )]);
    let mut procs = Procs(vec![
        spawn_setlist(
            &db,
            &dir,
            &[
                "scheduler",
                "--worker-timeout",
                "2s",
                "--housekeeping-interval",
                "500ms",
            ],
        ),
        spawn_setlist(&db, &dir, &["worker", "--heartbeat-interval", "500ms"]),
    ]);
    wait_for(
        &db,
        "SELECT count(*) FROM setlist.workers WHERE state = 'active'",
        1,
        "the worker",
    )
    .await;
    trigger_via_cli(&db, &dir, "long");
    wait_for(
        &db,
        "SELECT count(*) FROM setlist.task_instances WHERE state = 'running'",
        1,
        "the task to start",
    )
    .await;

    let victim = &mut procs.0[1];
    kill(Pid::from_raw(victim.id() as i32), Signal::SIGKILL).unwrap();
    victim.wait().unwrap();
    procs.0.push(spawn_setlist(
        &db,
        &dir,
        &["worker", "--heartbeat-interval", "500ms"],
    ));

    wait_for(
        &db,
        "SELECT count(*) FROM setlist.dag_runs WHERE state = 'success'",
        1,
        "the run to succeed",
    )
    .await;
    let attempts: Vec<(i32, String, Option<String>)> = sqlx::query_as(
        "SELECT a.try_number, a.state::text, a.error FROM setlist.attempts a
         JOIN setlist.task_instances t ON t.id = a.ti_id WHERE t.task_id = 'work' ORDER BY a.try_number",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!((attempts[0].0, attempts[0].1.as_str()), (1, "failed"));
    let reason = attempts[0].2.as_deref().unwrap();
    assert!(
        reason.contains("was lost (no heartbeat for 2s)"),
        "{reason}"
    );
    assert_eq!((attempts[1].0, attempts[1].1.as_str()), (2, "success"));
    let lost: i64 = sqlx::query_scalar("SELECT count(*) FROM setlist.workers WHERE state = 'lost'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(lost, 1);
}

#[tokio::test]
async fn two_scheduler_processes_create_each_run_exactly_once() {
    let db = TestDb::new().await;
    let start = (chrono::Utc::now() - chrono::Duration::hours(30)).format("%Y-%m-%dT%H:00:00Z");
    let dir = dag_dir(&[(
        "hourly.toml",
        &format!(
            "[dag]\nid = \"hourly\"\nschedule = \"@hourly\"\nstart_date = {start}\ncatchup = true\nmax_active_runs = 2\n[[task]]\nid = \"t\"\nkind = \"noop\"\n"
        ),
    )]);
    let _procs = Procs(vec![
        spawn_setlist(
            &db,
            &dir,
            &["scheduler", "--housekeeping-interval", "200ms"],
        ),
        spawn_setlist(
            &db,
            &dir,
            &["scheduler", "--housekeeping-interval", "200ms"],
        ),
    ]);
    // 30 hours back from the top of an hour: 29 or 30 complete intervals by now.
    let expected: i64 = {
        let now = chrono::Utc::now();
        let first = chrono::DateTime::parse_from_rfc3339(&start.to_string())
            .unwrap()
            .with_timezone(&chrono::Utc);
        (now - first).num_hours()
    };
    wait_for(
        &db,
        "SELECT count(*) FROM setlist.dag_runs",
        expected,
        "the catchup runs",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (runs, dates, running): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT logical_date), count(*) FILTER (WHERE state = 'running') FROM setlist.dag_runs",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((runs, dates), (expected, expected));
    assert_eq!(
        running, 2,
        "max_active_runs across both schedulers (no workers run)"
    );
}
