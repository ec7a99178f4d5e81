//! load_bronze into Snowflake, against the fakesnow emulator that scripts/snowflake.sh
//! starts (Snowflake's wire protocol over DuckDB): login, DDL, an external stage over
//! the lake, COPY INTO per object in a transaction with its manifest row, and
//! Snowflake's load history. What the emulator cannot show is named in
//! docs/snowflake.md.

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

use common::streaming::{landed, simulation, stray_object, unique};
use common::{Procs, TestDb, spawn_setlist_with, trigger_via_cli, trigger_via_cli_with};
use snowflake_connector_rs::CellValue;
use tasks::bronze::snowflake::{Snowflake, SnowflakeAuth, SnowflakeConfig};
use tasks::bronze::{LoadBronze, LoadReport};
use tasks::storage::Storage;

const FAKESNOW: &str = "127.0.0.1:18444";

/// A Snowflake database of the test's own on the emulator.
async fn snowflake(dir: &str) -> (Snowflake, SnowflakeConfig) {
    if TcpStream::connect_timeout(&FAKESNOW.parse().unwrap(), Duration::from_secs(2)).is_err() {
        panic!("No Snowflake emulator answers at {FAKESNOW}. Start one with: scripts/snowflake.sh");
    }
    let config = SnowflakeConfig {
        account: "fakesnow".into(),
        user: "setlist".into(),
        auth: SnowflakeAuth::Password("unused".into()),
        database: unique("t").replace('-', "_").to_uppercase(),
        warehouse: None,
        role: None,
        endpoint: Some(format!("http://{FAKESNOW}")),
        stage: "bronze.setlist_lake".into(),
        stage_url: Some(Storage::open(dir).unwrap().stage_url().unwrap()),
        storage_integration: None,
    };
    let sf = Snowflake::connect(config.clone()).await.unwrap();
    sf.query(&format!(
        "CREATE DATABASE IF NOT EXISTS {}",
        config.database
    ))
    .await
    .unwrap();
    sf.query(&format!("USE DATABASE {}", config.database))
        .await
        .unwrap();
    (sf, config)
}

async fn load(db: &TestDb, sf: &Snowflake, topic: &str, dir: &str) -> LoadReport {
    let loader: LoadBronze =
        serde_json::from_value(serde_json::json!({ "store_url": dir, "topic": topic })).unwrap();
    loader
        .run_with(&db.pool, sf, &Storage::open(dir).unwrap(), |_| {})
        .await
        .unwrap()
}

async fn count(sf: &Snowflake, sql: &str) -> i64 {
    match sf.query(sql).await.unwrap()[0].value_at(0).unwrap() {
        CellValue::Integer(n) => *n as i64,
        other => panic!("{sql} gave {other:?}"),
    }
}

#[tokio::test]
async fn objects_load_into_snowflake_once_even_when_the_manifest_is_lost() {
    let db = TestDb::new().await;
    let (topic, dir) = landed(&db, 3_000, 1_000).await;
    let (sf, _) = snowflake(&dir).await;
    let first = load(&db, &sf, &topic, &dir).await;
    assert_eq!(
        (first.rows, first.skipped, first.failed),
        (3_000, 0, vec![])
    );
    assert_eq!(count(&sf, "SELECT count(*) FROM bronze.plays").await, 3_000);
    assert_eq!(
        count(&sf, "SELECT count(DISTINCT event_id) FROM bronze.plays").await,
        3_000
    );
    // The values arrive as produced: per-region sums of ms_played match the simulator.
    let mut generator = tasks::simulate::Generator::new(&simulation(&topic, 3_000).world());
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for _ in 0..3_000 {
        let e = generator.next_event();
        *want.entry(e.region.to_string()).or_default() += e.ms_played;
    }
    let mut got: BTreeMap<String, i64> = BTreeMap::new();
    for row in sf
        .query("SELECT region, CAST(sum(ms_played) AS NUMBER(19, 0)) FROM bronze.plays GROUP BY region")
        .await
        .unwrap()
    {
        let (CellValue::String(region), CellValue::Integer(sum)) =
            (row.value_at(0).unwrap(), row.value_at(1).unwrap())
        else {
            panic!("unexpected row {row:?}");
        };
        got.insert(region.clone(), *sum as i64);
    }
    assert_eq!(got, want);
    assert_eq!(
        count(
            &sf,
            "SELECT count(*) FROM bronze.plays WHERE ts IS NULL OR source_object IS NULL"
        )
        .await,
        0
    );

    // A rerun finds everything in the manifest and loads nothing.
    let again = load(&db, &sf, &topic, &dir).await;
    assert_eq!((again.objects, again.rows, again.skipped), (0, 0, 0));

    // With the manifest gone, Snowflake's load history still refuses a second copy.
    sf.query("DELETE FROM bronze.load_manifest").await.unwrap();
    let replay = load(&db, &sf, &topic, &dir).await;
    assert_eq!((replay.rows, replay.skipped), (0, first.objects));
    assert_eq!(count(&sf, "SELECT count(*) FROM bronze.plays").await, 3_000);
    assert_eq!(
        count(&sf, "SELECT count(*) FROM bronze.load_manifest").await,
        first.objects as i64
    );
}

#[tokio::test]
async fn a_corrupt_object_fails_by_name_in_snowflake_and_leaves_no_rows() {
    let db = TestDb::new().await;
    let (topic, dir) = landed(&db, 2_000, 1_000).await;
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
    let (sf, _) = snowflake(&dir).await;
    let report = load(&db, &sf, &topic, &dir).await;
    assert_eq!(report.rows, 2_000);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, garbage);
    assert!(
        report.failed[0]
            .1
            .contains("is not a readable Parquet file"),
        "{}",
        report.failed[0].1
    );
    assert_eq!(
        count(
            &sf,
            "SELECT count(*) FROM bronze.plays WHERE source_object LIKE '%garbage%'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &sf,
            "SELECT count(*) FROM bronze.load_manifest WHERE object_key LIKE '%garbage%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_dag_loads_into_snowflake_through_a_named_connection() {
    let db = TestDb::new().await;
    let (topic, dir) = landed(&db, 1_500, 500).await;
    let (sf, config) = snowflake(&dir).await;
    let dags = std::env::temp_dir().join(unique("dags"));
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(
        dags.join("load.toml"),
        format!(
            "[dag]\nid = \"load\"\n[[task]]\nid = \"load_bronze\"\nkind = \"load_bronze\"\nparams = {{ store_url = \"{dir}\", topic = \"{topic}\", warehouse = \"snowflake\", connection = \"lake_sf\" }}\n"
        ),
    )
    .unwrap();
    let env = [(
        "SETLIST_CONN_LAKE_SF",
        format!(
            "snowflake://setlist:unused@fakesnow/{}?endpoint=http://{FAKESNOW}",
            config.database
        ),
    )];
    let _procs = Procs(vec![spawn_setlist_with(&db, &dags, &["standalone"], &env)]);
    trigger_via_cli_with(&db, &dags, "load", &env);
    let state = common::wait_for_run(&db.pool, "load", Duration::from_secs(60)).await;
    assert_eq!(state, "success");
    assert_eq!(count(&sf, "SELECT count(*) FROM bronze.plays").await, 1_500);
}

#[tokio::test]
async fn a_dag_loads_into_snowflake_configured_by_the_older_variables() {
    let db = TestDb::new().await;
    let (topic, dir) = landed(&db, 1_500, 500).await;
    let (sf, config) = snowflake(&dir).await;
    let dags = std::env::temp_dir().join(unique("dags"));
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(
        dags.join("load.toml"),
        format!(
            "[dag]\nid = \"load\"\n[[task]]\nid = \"load_bronze\"\nkind = \"load_bronze\"\nparams = {{ store_url = \"{dir}\", topic = \"{topic}\", warehouse = \"snowflake\" }}\n"
        ),
    )
    .unwrap();
    let env = [
        ("SNOWFLAKE_ACCOUNT", "fakesnow".to_string()),
        ("SNOWFLAKE_USER", "setlist".to_string()),
        ("SNOWFLAKE_PASSWORD", "unused".to_string()),
        ("SNOWFLAKE_DATABASE", config.database.clone()),
        ("SETLIST_SNOWFLAKE_URL", format!("http://{FAKESNOW}")),
    ];
    let _procs = Procs(vec![spawn_setlist_with(&db, &dags, &["standalone"], &env)]);
    trigger_via_cli(&db, &dags, "load");
    let state = common::wait_for_run(&db.pool, "load", Duration::from_secs(60)).await;
    assert_eq!(state, "success");
    assert_eq!(count(&sf, "SELECT count(*) FROM bronze.plays").await, 1_500);
}
