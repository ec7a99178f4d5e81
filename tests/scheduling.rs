//! The scheduler against a real PostgreSQL, driven tick by tick with a chosen clock:
//! catchup, DST, backfill, max_active_runs, pausing, and two schedulers at once.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use common::{TestDb, dag, drain, registry, worker};
use orchestrator::scheduler::{Scheduler, SchedulerConfig};
use orchestrator::store::{dags, runs};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

async fn scheduler_with(db: &TestDb, files: &[(&str, &str)]) -> Scheduler {
    let dir = std::env::temp_dir().join(format!("setlist-dags-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut s = Scheduler::new(db.pool.clone(), registry(), SchedulerConfig::new(&dir));
    let bag = s.reload().await.unwrap();
    assert!(bag.errors.is_empty(), "{:?}", bag.errors);
    s
}

async fn intervals(db: &TestDb, dag_id: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>, String)> {
    sqlx::query_as(
        "SELECT data_interval_start, data_interval_end, run_type::text FROM setlist.dag_runs
         WHERE dag_id = $1 ORDER BY logical_date",
    )
    .bind(dag_id)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

fn hourly(catchup: bool, max_active_runs: u32) -> String {
    format!(
        r#"
        [dag]
        id = "hourly"
        schedule = "0 * * * *"
        start_date = 2026-01-01T00:00:00Z
        catchup = {catchup}
        max_active_runs = {max_active_runs}
        [[task]]
        id = "t"
        kind = "noop"
        "#
    )
}

#[tokio::test]
async fn catchup_creates_every_missed_interval_exactly_once() {
    let db = TestDb::new().await;
    let s = scheduler_with(&db, &[("hourly.toml", &hourly(true, 16))]).await;
    let out = s.tick(utc(2026, 1, 1, 5, 30)).await.unwrap();
    assert_eq!(out.runs_created, 5);
    let got = intervals(&db, "hourly").await;
    let expected: Vec<_> = (0..5)
        .map(|h| {
            (
                utc(2026, 1, 1, h, 0),
                utc(2026, 1, 1, h + 1, 0),
                "scheduled".to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    // The same instant again creates nothing; the next hour creates one.
    assert_eq!(
        s.tick(utc(2026, 1, 1, 5, 30)).await.unwrap().runs_created,
        0
    );
    assert_eq!(s.tick(utc(2026, 1, 1, 6, 0)).await.unwrap().runs_created, 1);
}

#[tokio::test]
async fn without_catchup_only_the_latest_interval_runs() {
    let db = TestDb::new().await;
    let s = scheduler_with(&db, &[("hourly.toml", &hourly(false, 16))]).await;
    s.tick(utc(2026, 1, 1, 5, 30)).await.unwrap();
    assert_eq!(
        intervals(&db, "hourly").await,
        [(
            utc(2026, 1, 1, 4, 0),
            utc(2026, 1, 1, 5, 0),
            "scheduled".to_string()
        )]
    );
    // Hours later, the gap is skipped again.
    s.tick(utc(2026, 1, 1, 9, 10)).await.unwrap();
    assert_eq!(
        intervals(&db, "hourly").await.last().unwrap().0,
        utc(2026, 1, 1, 8, 0)
    );
}

#[tokio::test]
async fn a_local_daily_schedule_follows_the_wall_clock_across_a_dst_change() {
    let db = TestDb::new().await;
    let s = scheduler_with(
        &db,
        &[(
            "berlin.toml",
            r#"
            [dag]
            id = "berlin"
            schedule = "30 2 * * *"
            timezone = "Europe/Berlin"
            start_date = 2026-03-27
            catchup = true
            [[task]]
            id = "t"
            kind = "noop"
            "#,
        )],
    )
    .await;
    s.tick(utc(2026, 3, 31, 12, 0)).await.unwrap();
    let got: Vec<_> = intervals(&db, "berlin")
        .await
        .into_iter()
        .map(|i| (i.0, i.1))
        .collect();
    assert_eq!(
        got,
        [
            (utc(2026, 3, 27, 1, 30), utc(2026, 3, 28, 1, 30)),
            // 02:30 does not exist on 03-29; that tick is 03:00 CEST (01:00 UTC).
            (utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0)),
            (utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)),
            (utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)),
        ]
    );
}

#[tokio::test]
async fn backfill_creates_the_intervals_in_range_and_skips_existing_ones() {
    let db = TestDb::new().await;
    let d = dag(&hourly(false, 16));
    let first = runs::backfill(&db.pool, &d, utc(2026, 2, 1, 0, 0), utc(2026, 2, 1, 3, 0))
        .await
        .unwrap();
    assert_eq!((first.created.len(), first.existing), (3, 0));
    let again = runs::backfill(&db.pool, &d, utc(2026, 2, 1, 2, 0), utc(2026, 2, 1, 4, 30))
        .await
        .unwrap();
    assert_eq!((again.created.len(), again.existing), (2, 1));
    let got = intervals(&db, "hourly").await;
    let expected: Vec<_> = (0..5)
        .map(|h| {
            (
                utc(2026, 2, 1, h, 0),
                utc(2026, 2, 1, h + 1, 0),
                "backfill".to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected);

    let err = runs::backfill(&db.pool, &d, utc(2026, 2, 2, 0, 0), utc(2026, 2, 1, 0, 0))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("--from"), "{err}");
    let manual = dag("[dag]\nid = \"m\"\n[[task]]\nid = \"t\"\nkind = \"noop\"\n");
    let err = runs::backfill(
        &db.pool,
        &manual,
        utc(2026, 1, 1, 0, 0),
        utc(2026, 1, 2, 0, 0),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "DAG `m` has no schedule, so it has no intervals to backfill"
    );
}

#[tokio::test]
async fn max_active_runs_holds_and_the_next_runs_start_as_others_end() {
    let db = TestDb::new().await;
    let s = scheduler_with(&db, &[("hourly.toml", &hourly(true, 2))]).await;
    let out = s.tick(utc(2026, 1, 1, 5, 0)).await.unwrap();
    assert_eq!((out.runs_created, out.runs_started), (5, 2));
    let w = worker(&db).await;
    assert_eq!(drain(&w).await.len(), 2);
    assert_eq!(s.tick(utc(2026, 1, 1, 5, 0)).await.unwrap().runs_started, 2);
    drain(&w).await;
    assert_eq!(s.tick(utc(2026, 1, 1, 5, 0)).await.unwrap().runs_started, 1);
    drain(&w).await;
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state::text FROM setlist.dag_runs ORDER BY logical_date")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(states, vec!["success"; 5]);
}

#[tokio::test]
async fn a_paused_dag_gets_no_runs_until_unpaused() {
    let db = TestDb::new().await;
    let s = scheduler_with(&db, &[("hourly.toml", &hourly(true, 16))]).await;
    dags::set_paused(&db.pool, "hourly", true).await.unwrap();
    assert_eq!(s.tick(utc(2026, 1, 1, 3, 0)).await.unwrap().runs_created, 0);
    dags::set_paused(&db.pool, "hourly", false).await.unwrap();
    assert_eq!(s.tick(utc(2026, 1, 1, 3, 0)).await.unwrap().runs_created, 3);
    let err = dags::set_paused(&db.pool, "nope", true).await.unwrap_err();
    assert!(err.to_string().starts_with("no DAG `nope`"), "{err}");
}

#[tokio::test]
async fn two_schedulers_at_once_create_each_run_exactly_once() {
    let db = TestDb::new().await;
    let files = [("hourly.toml", hourly(true, 3))];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let a = scheduler_with(&db, &files).await;
    let b = scheduler_with(&db, &files).await;
    let mut created = 0;
    let mut started = 0;
    for hour in 1..=48 {
        let now = utc(2026, 1, 1, 0, 0) + chrono::Duration::hours(hour);
        let (x, y) = tokio::join!(a.tick(now), b.tick(now));
        let (x, y) = (x.unwrap(), y.unwrap());
        created += x.runs_created + y.runs_created;
        started += x.runs_started + y.runs_started;
    }
    assert_eq!(created, 48);
    assert_eq!(
        started, 3,
        "max_active_runs = 3 holds across both schedulers"
    );
    let distinct: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT logical_date) FROM setlist.dag_runs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(distinct, 48);
}

#[tokio::test]
async fn a_manual_trigger_carries_conf_and_a_second_at_the_same_date_conflicts() {
    let db = TestDb::new().await;
    let d = dag(&hourly(false, 16));
    let at = utc(2026, 3, 1, 10, 15);
    let run = runs::trigger(&db.pool, &d, serde_json::json!({"region": "EU"}), Some(at))
        .await
        .unwrap();
    let (row, tasks) = runs::get(&db.pool, run).await.unwrap();
    assert_eq!(row.conf, serde_json::json!({"region": "EU"}));
    assert_eq!(
        (row.data_interval_start, row.data_interval_end),
        (utc(2026, 3, 1, 9, 0), utc(2026, 3, 1, 10, 0))
    );
    assert_eq!(tasks.len(), 1);
    let err = runs::trigger(&db.pool, &d, serde_json::json!({}), Some(at))
        .await
        .unwrap_err();
    assert!(matches!(err, orchestrator::Error::Conflict(_)), "{err}");
    let err = runs::trigger(&db.pool, &d, serde_json::json!([1]), None)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "conf must be a JSON object");
}

#[tokio::test]
async fn new_data_starts_one_run_at_a_time_of_the_dags_triggered_by_it() {
    let db = TestDb::new().await;
    let s = scheduler_with(
        &db,
        &[(
            "fresh.toml",
            "[dag]\nid = \"fresh\"\ntriggered_by = [\"raw/plays\"]\nmax_active_runs = 1\n[[task]]\nid = \"t\"\nkind = \"noop\"\n",
        )],
    )
    .await;
    let now = Utc::now();
    assert_eq!(
        s.tick(now).await.unwrap().runs_created,
        0,
        "no data, no run"
    );
    let publish = |dataset: &'static str| {
        let pool = db.pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            orchestrator::store::datasets::publish(&mut conn, dataset)
                .await
                .unwrap();
        }
    };
    publish("raw/plays").await;
    publish("something/else").await;
    let out = s.tick(now).await.unwrap();
    assert_eq!((out.runs_created, out.runs_started), (1, 1));
    // More data while the run is running: one more run queues, and only one.
    publish("raw/plays").await;
    assert_eq!(s.tick(now).await.unwrap().runs_created, 1);
    publish("raw/plays").await;
    assert_eq!(
        s.tick(now).await.unwrap().runs_created,
        0,
        "a triggered run already waits"
    );
    let w = worker(&db).await;
    drain(&w).await;
    s.tick(now).await.unwrap();
    drain(&w).await;
    // The queued run saw the last event: nothing is left to trigger.
    assert_eq!(s.tick(now).await.unwrap().runs_created, 0);
    let types: Vec<(String, String)> =
        sqlx::query_as("SELECT run_type::text, state::text FROM setlist.dag_runs ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        types,
        vec![("triggered".to_string(), "success".to_string()); 2]
    );
}

#[tokio::test]
async fn the_store_holds_what_the_scheduler_parsed_for_every_other_reader() {
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!("setlist-dags-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hourly.toml"), hourly(true, 3)).unwrap();
    std::fs::write(
        dir.join("broken.toml"),
        "[dag]\nid = \"broken\"\nschedule = \"61 * * * *\"\n[[task]]\nid = \"t\"\nkind = \"noop\"\n",
    )
    .unwrap();
    let mut s = Scheduler::new(db.pool.clone(), registry(), SchedulerConfig::new(&dir));
    s.reload().await.unwrap();

    // A reader gets the very DAG the scheduler parsed, and the broken file's problem
    // with its place, without reading a file.
    let stored = dags::parsed(&db.pool).await.unwrap();
    let parsed = s.dags().get("hourly").unwrap();
    let read = stored.get("hourly").unwrap();
    assert_eq!(read.definition_hash(), parsed.definition_hash());
    assert_eq!(read.file, parsed.file);
    assert_eq!(read.schedule.expr(), Some("0 * * * *"));
    let errors: Vec<String> = stored.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{}:3:12: invalid schedule",
            dir.join("broken.toml").display()
        )),
        "{errors:?}"
    );

    // Unchanged files are not parsed again; a fixed file and a removed one are noticed.
    assert!(!s.reload_if_changed().await.unwrap());
    std::fs::write(
        dir.join("broken.toml"),
        hourly(false, 1).replace("\"hourly\"", "\"fixed\""),
    )
    .unwrap();
    std::fs::remove_file(dir.join("hourly.toml")).unwrap();
    assert!(s.reload_if_changed().await.unwrap());
    let stored = dags::parsed(&db.pool).await.unwrap();
    let ids: Vec<&str> = stored.dags.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["fixed"]);
    assert!(stored.errors.is_empty(), "{:?}", stored.errors);
    let err = dags::get(&db.pool, "hourly").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no DAG `hourly` in the state store (loaded: fixed)"),
        "{err}"
    );
    // The removed DAG's row stays for its runs' sake, inactive.
    let active: bool =
        sqlx::query_scalar("SELECT is_active FROM setlist.dags WHERE dag_id = 'hourly'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(!active);

    // A definition this version cannot read is a problem of its file, not a lost DAG.
    sqlx::query(
        "UPDATE setlist.dags SET definition = '{\"id\": \"fixed\"}' WHERE dag_id = 'fixed'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let stored = dags::parsed(&db.pool).await.unwrap();
    assert!(stored.dags.is_empty());
    let message = stored.errors[0].to_string();
    assert!(
        message.contains(
            "the stored definition of DAG `fixed` cannot be read by this version (missing field"
        ),
        "{message}"
    );
}
