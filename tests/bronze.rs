//! load_bronze: raw objects -> bronze.plays on PostgreSQL, each exactly once.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use common::streaming::{BronzeRow, landed, simulation, stray_object, unique};
use common::{Procs, TestDb, spawn_setlist, trigger_via_cli};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tasks::bronze::postgres::Postgres;
use tasks::bronze::{LoadBronze, LoadReport};
use tasks::storage::Storage;

fn loader(topic: &str, dir: &str) -> LoadBronze {
    serde_json::from_value(serde_json::json!({ "store_url": dir, "topic": topic })).unwrap()
}

async fn load(db: &TestDb, topic: &str, dir: &str) -> LoadReport {
    let storage = Storage::open(dir).unwrap();
    let warehouse = Postgres::from_pool(db.pool.clone());
    loader(topic, dir)
        .run_with(&db.pool, &warehouse, &storage, |_| {})
        .await
        .unwrap()
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn every_landed_event_reaches_bronze_once_and_a_rerun_loads_nothing() {
    let db = TestDb::new().await;
    let (topic, dir) = landed(&db, 8_000, 1_000).await;
    let first = load(&db, &topic, &dir).await;
    assert_eq!(
        (first.rows, first.skipped, first.failed.len()),
        (8_000, 0, 0)
    );
    // Every typed field arrives as produced (the same seed regenerates the events).
    let mut generator = tasks::simulate::Generator::new(&simulation(&topic, 8_000).world());
    let want: BTreeMap<String, serde_json::Value> = (0..8_000)
        .map(|_| {
            let e = serde_json::to_value(generator.next_event()).unwrap();
            (e["event_id"].as_str().unwrap().to_string(), e)
        })
        .collect();
    let got: Vec<BronzeRow> = sqlx::query_as(
        "SELECT event_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), user_id,
                ms_played, track_duration_ms, skipped, offline, region FROM bronze.plays",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for (id, ts, user, played, duration, skipped, offline, region) in got {
        let e = &want[&id];
        assert_eq!(
            (
                ts.as_str(),
                user.as_str(),
                played,
                duration,
                skipped,
                offline,
                region.as_str()
            ),
            (
                e["ts"].as_str().unwrap(),
                e["user_id"].as_str().unwrap(),
                e["ms_played"].as_i64().unwrap(),
                e["track_duration_ms"].as_i64().unwrap(),
                e["skipped"].as_bool().unwrap(),
                e["offline"].as_bool().unwrap(),
                e["region"].as_str().unwrap()
            ),
            "event {id}"
        );
    }
    let objects = scalar(
        &db,
        "SELECT count(*) FROM setlist.raw_objects WHERE object_key IS NOT NULL",
    )
    .await;
    assert_eq!(first.objects as i64, objects);
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT event_id) FROM bronze.plays").await,
        8_000
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM bronze.load_manifest").await,
        objects
    );
    // Each row names its object and its load.
    let unmatched = scalar(
        &db,
        "SELECT count(*) FROM bronze.plays p LEFT JOIN bronze.load_manifest m ON m.object_key = p.source_object
         WHERE m.object_key IS NULL OR m.load_id <> p.load_id",
    )
    .await;
    assert_eq!(unmatched, 0);
    let again = load(&db, &topic, &dir).await;
    assert_eq!((again.objects, again.rows), (0, 0));
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM bronze.plays").await,
        8_000
    );
}

#[tokio::test]
async fn corrupt_and_foreign_objects_fail_by_name_and_the_others_still_load() {
    let db = TestDb::new().await;
    let (topic, dir) = landed(&db, 3_000, 1_000).await;
    // Not Parquet at all, and Parquet with another layout.
    let garbage = "raw/plays/dt=2026-05-01/hr=17/garbage.parquet";
    stray_object(
        &db.pool,
        &dir,
        &topic,
        garbage,
        0,
        b"PAR1 but not really".to_vec(),
    )
    .await;
    let foreign = "raw/plays/dt=2026-05-01/hr=17/foreign.parquet";
    let batch =
        RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef)])
            .unwrap();
    let mut bytes = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    stray_object(&db.pool, &dir, &topic, foreign, 1, bytes).await;
    let report = load(&db, &topic, &dir).await;
    assert_eq!(report.rows, 3_000);
    let failed: BTreeMap<String, String> = report.failed.into_iter().collect();
    assert!(
        failed[garbage].contains("is not a readable Parquet file"),
        "{}",
        failed[garbage]
    );
    assert!(
        failed[foreign].ends_with("foreign.parquet: column event_id is missing"),
        "{}",
        failed[foreign]
    );
    let bad_rows = scalar(&db, "SELECT count(*) FROM bronze.plays WHERE source_object LIKE '%garbage%' OR source_object LIKE '%foreign%'").await;
    assert_eq!(bad_rows, 0);
    let bad_manifest = scalar(&db, "SELECT count(*) FROM bronze.load_manifest WHERE object_key LIKE '%garbage%' OR object_key LIKE '%foreign%'").await;
    assert_eq!(bad_manifest, 0);
}

/// A raw object in the layout of an earlier version: every column but `extras`.
fn object_without_extras(events: usize, seed: u64) -> Vec<u8> {
    let mut sim = simulation("old", events as u64);
    sim.seed = seed;
    let mut generator = tasks::simulate::Generator::new(&sim.world());
    let mut builder = tasks::raw::parquet::BatchBuilder::default();
    for offset in 0..events {
        builder.append(&generator.next_event(), 0, offset as i64);
    }
    let batch = builder.finish();
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|&i| batch.schema().field(i).name() != tasks::raw::parquet::EXTRAS)
        .collect();
    let old = batch.project(&keep).unwrap();
    assert_eq!(old.num_columns(), batch.num_columns() - 1);
    tasks::raw::parquet::to_parquet(&old).unwrap().to_vec()
}

#[tokio::test]
async fn an_object_from_before_the_extras_column_loads_with_it_empty() {
    let db = TestDb::new().await;
    let (topic, dir) = landed(&db, 1_000, 1_000).await;
    let old = "raw/plays/dt=2026-05-01/hr=17/before-extras.parquet";
    stray_object(
        &db.pool,
        &dir,
        &topic,
        old,
        0,
        object_without_extras(250, 99),
    )
    .await;
    let report = load(&db, &topic, &dir).await;
    assert_eq!(
        (report.rows, report.failed.len()),
        (1_250, 0),
        "{:?}",
        report.failed
    );
    assert_eq!(
        scalar(
            &db,
            &format!(
                "SELECT count(*) FROM bronze.plays WHERE source_object = '{old}' AND extras IS NULL"
            )
        )
        .await,
        250
    );
}

#[tokio::test]
async fn a_bronze_table_from_before_a_new_field_gets_its_column_and_keeps_its_rows() {
    let db = TestDb::new().await;
    let (topic, dir) = landed(&db, 1_000, 1_000).await;
    assert_eq!(load(&db, &topic, &dir).await.rows, 1_000);
    // The table as an earlier version made it: no extras column.
    sqlx::query("ALTER TABLE bronze.plays DROP COLUMN extras")
        .execute(&db.pool)
        .await
        .unwrap();
    let newer = "raw/plays/dt=2026-05-01/hr=17/after-upgrade.parquet";
    stray_object(
        &db.pool,
        &dir,
        &topic,
        newer,
        0,
        object_without_extras(100, 7),
    )
    .await;
    let report = load(&db, &topic, &dir).await;
    assert_eq!(
        (report.rows, report.failed.len()),
        (100, 0),
        "{:?}",
        report.failed
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM bronze.plays WHERE extras IS NULL"
        )
        .await,
        1_100
    );
}

#[tokio::test]
async fn a_worker_killed_during_load_bronze_is_retried_and_loads_each_object_once() {
    let db = TestDb::new().await;
    let (topic, dir) = landed(&db, 40_000, 100).await;
    let dags = std::env::temp_dir().join(unique("dags"));
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(
        dags.join("load.toml"),
        format!(
            "[dag]\nid = \"load\"\n[[task]]\nid = \"load_bronze\"\nkind = \"load_bronze\"\nretries = 2\nretry_delay = \"1s\"\nparams = {{ store_url = \"{dir}\", topic = \"{topic}\" }}\n"
        ),
    )
    .unwrap();
    let objects = scalar(&db, "SELECT count(*) FROM setlist.raw_objects").await;
    let mut procs = Procs(vec![
        spawn_setlist(
            &db,
            &dags,
            &[
                "scheduler",
                "--worker-timeout",
                "2s",
                "--housekeeping-interval",
                "300ms",
            ],
        ),
        spawn_setlist(&db, &dags, &["worker", "--heartbeat-interval", "300ms"]),
    ]);
    trigger_via_cli(&db, &dags, "load");
    // Kill the worker once the load is under way but not done.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let loaded: i64 = sqlx::query_scalar("SELECT count(*) FROM bronze.load_manifest")
            .fetch_one(&db.pool)
            .await
            .unwrap_or(0);
        if loaded >= objects / 20 {
            assert!(
                loaded < objects,
                "the load finished before the kill; make it bigger"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the load never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill(Pid::from_raw(procs.0[1].id() as i32), Signal::SIGKILL).unwrap();
    procs.0.push(spawn_setlist(
        &db,
        &dags,
        &["worker", "--heartbeat-interval", "300ms"],
    ));
    let deadline = Instant::now() + Duration::from_secs(90);
    while scalar(
        &db,
        "SELECT count(*) FROM setlist.dag_runs WHERE state = 'success'",
    )
    .await
        < 1
    {
        assert!(
            Instant::now() < deadline,
            "the run did not succeed after the retry"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM bronze.plays").await,
        40_000
    );
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT event_id) FROM bronze.plays").await,
        40_000
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM bronze.load_manifest").await,
        objects
    );
    let tries = scalar(
        &db,
        "SELECT max(try_number)::bigint FROM setlist.task_instances",
    )
    .await;
    assert_eq!(tries, 2, "the first attempt died with its worker");
}
