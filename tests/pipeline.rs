//! The whole pipeline on the real servers: seeded plays -> Kafka -> lander -> the
//! shipped spotify_pipeline DAG (load_bronze, dbt source freshness, dbt build) run by
//! a scheduler and a worker process -> gold.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::streaming::{lake_dir, s3_options, simulation, unique, wait_for_landed};
use common::{Procs, TestDb};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tasks::land::{Land, Lander};
use tasks::simulate::{Generator, produce};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn fifty_thousand_plays_reach_gold_exactly_and_poison_rows_are_quarantined() {
    pipeline(lake_dir(), Vec::new()).await;
}

#[tokio::test]
async fn the_same_pipeline_runs_with_the_lake_on_s3() {
    pipeline(format!("s3://setlist/{}", unique("pipeline")), s3_options()).await;
}

/// The S3 options as the AWS_* variables a worker process reads.
fn aws_env(options: &[(String, String)]) -> Vec<(String, String)> {
    options
        .iter()
        .filter_map(|(k, v)| {
            let name = match k.as_str() {
                "endpoint" => "AWS_ENDPOINT_URL",
                "access_key_id" => "AWS_ACCESS_KEY_ID",
                "secret_access_key" => "AWS_SECRET_ACCESS_KEY",
                "region" => "AWS_REGION",
                _ => return None,
            };
            Some((name.to_string(), v.clone()))
        })
        .collect()
}

/// Lands everything on the topic until `total` events are in the ledger.
async fn land(
    db: &TestDb,
    sim: &tasks::simulate::Simulate,
    dir: &str,
    store_options: &[(String, String)],
    total: i64,
) {
    let config = Land {
        kafka: sim.kafka.clone(),
        group_id: format!("g-{}", sim.kafka.topic),
        max_age: Duration::from_millis(300),
        store_options: store_options.to_vec(),
        ..Land::new(dir)
    };
    let shutdown = CancellationToken::new();
    let lander = tokio::spawn(
        Lander::new(config, db.pool.clone())
            .unwrap()
            .run(shutdown.clone()),
    );
    wait_for_landed(&db.pool, &sim.kafka.topic, total, Duration::from_secs(120)).await;
    shutdown.cancel();
    lander.await.unwrap().unwrap();
}

/// Triggers a DAG with the CLI, once the scheduler has recorded it, and waits for that
/// run to succeed.
async fn run_dag(db: &TestDb, setlist: &dyn Fn(&[&str]) -> Command, dag: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM setlist.dags WHERE dag_id = $1 AND is_active)",
    )
    .bind(dag)
    .fetch_one(&db.pool)
    .await
    .unwrap()
    {
        assert!(
            Instant::now() < deadline,
            "the scheduler never recorded {dag}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = setlist(&["dags", "trigger", dag]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: i64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let state: String =
            sqlx::query_scalar("SELECT state::text FROM setlist.dag_runs WHERE id = $1")
                .bind(run)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        if state == "success" {
            return run;
        }
        if state == "failed" || Instant::now() > deadline {
            let errors: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT t.task_id, a.error FROM setlist.task_instances t LEFT JOIN setlist.attempts a ON a.ti_id = t.id WHERE t.run_id = $1",
            )
            .bind(run)
            .fetch_all(&db.pool)
            .await
            .unwrap();
            panic!("run {run} is {state}: {errors:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every node of a dbt task's output passed; returns how many there were.
async fn all_dbt_nodes_passed(db: &TestDb, run: i64, task: &str) -> usize {
    let output: serde_json::Value = sqlx::query_scalar(
        "SELECT output FROM setlist.task_instances WHERE run_id = $1 AND task_id = $2",
    )
    .bind(run)
    .bind(task)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let results = output["results"].as_array().unwrap();
    for r in results {
        assert!(
            ["success", "pass"].contains(&r["status"].as_str().unwrap()),
            "{r}"
        );
    }
    results.len()
}

/// Plays per region as the simulator made them, for `count` events of `sim`.
fn regions_of(sim: &tasks::simulate::Simulate, count: u64, into: &mut BTreeMap<String, i64>) {
    let mut g = Generator::new(&sim.world());
    for _ in 0..count {
        *into.entry(g.next_event().region.into_owned()).or_default() += 1;
    }
}

async fn gold_regions(db: &TestDb) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT region, sum(plays)::bigint FROM gold.agg_region_hourly GROUP BY region",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

async fn pipeline(dir: String, store_options: Vec<(String, String)>) {
    let db = TestDb::new().await;
    let topic = unique("plays");
    let sim = simulation(&topic, 50_000);
    produce(
        &sim,
        CancellationToken::new(),
        Duration::from_secs(60),
        |_, _| {},
    )
    .await
    .unwrap();

    // Two rows the lander accepts (valid JSON of the right shape) but silver must not.
    let mut g = Generator::new(&sim.world());
    let mut too_long = serde_json::to_value(g.next_event()).unwrap();
    too_long["event_id"] = uuid::Uuid::new_v4().to_string().into();
    too_long["ms_played"] = (too_long["track_duration_ms"].as_i64().unwrap() + 1).into();
    let mut future = serde_json::to_value(g.next_event()).unwrap();
    future["event_id"] = uuid::Uuid::new_v4().to_string().into();
    future["ts"] = (Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
        .into();
    let producer: FutureProducer = sim.kafka.client(&[]).create().unwrap();
    for poison in [&too_long, &future] {
        let payload = serde_json::to_vec(poison).unwrap();
        producer
            .send(
                FutureRecord::to(&topic).key("poison").payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    land(&db, &sim, &dir, &store_options, 50_002).await;

    // The shipped DAG file, run by real processes.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dags = std::env::temp_dir().join(unique("dags"));
    std::fs::create_dir_all(&dags).unwrap();
    for dag in ["spotify_pipeline.toml", "spotify_quality.toml"] {
        std::fs::copy(root.join("dags").join(dag), dags.join(dag)).unwrap();
    }
    let db_name = db.url.rsplit('/').next().unwrap().to_string();
    let setlist = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_setlist"));
        c.args(args)
            .arg("--dags-dir")
            .arg(&dags)
            .env("DATABASE_URL", &db.url)
            .env("SETLIST_STORE_URL", &dir)
            .env("SETLIST_TOPIC", &topic)
            .env("SETLIST_DBT", common::dbt_binary())
            .env("SETLIST_DBT_PROJECT", root.join("dbt"))
            .env("SETLIST_WAREHOUSE_DB", &db_name)
            .env("SETLIST_LOG", "warn")
            .envs(aws_env(&store_options))
            .stdin(Stdio::null());
        c
    };
    let _procs = Procs(vec![
        setlist(&["scheduler"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        setlist(&["worker"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ]);
    let run = run_dag(&db, &setlist, "spotify_pipeline").await;

    // The lander's new objects also started the DAG by themselves.
    let triggered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM setlist.dag_runs WHERE run_type = 'triggered'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(triggered >= 1, "no data-triggered run");
    let gold: i64 = sqlx::query_scalar("SELECT count(*) FROM gold.fct_plays")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(gold, 50_000);
    // Per-region sums in the dashboard table equal the simulator's own counts.
    let mut expected = BTreeMap::new();
    regions_of(&sim, 50_000, &mut expected);
    assert_eq!(gold_regions(&db).await, expected);
    let quarantined: Vec<String> =
        sqlx::query_scalar("SELECT rejection_reason FROM silver.int_plays__quarantined ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        quarantined,
        ["ms_played exceeds track_duration_ms", "ts is in the future"]
    );
    // Every dbt model and test passed, and the task's output says so per node; the
    // hourly DAG's full-scan tests pass too.
    let nodes = all_dbt_nodes_passed(&db, run, "dbt_build").await;
    assert!(nodes >= 25, "{nodes} dbt nodes");
    // Both dbt tasks ran in one warm dbt process of the worker, one after the other.
    let warm: Vec<String> = sqlx::query_scalar(
        "SELECT l.line FROM setlist.attempt_logs l JOIN setlist.attempts a ON a.id = l.attempt_id \
         JOIN setlist.task_instances t ON t.id = a.ti_id \
         WHERE t.run_id = $1 AND l.line LIKE 'dbt runs in warm process %' ORDER BY a.started_at",
    )
    .bind(run)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let word = |line: &str, n: usize| line.split_whitespace().nth(n).unwrap().to_string();
    assert_eq!(warm.len(), 2, "{warm:?}");
    assert_eq!(word(&warm[0], 5), word(&warm[1], 5), "{warm:?}");
    let command = |line: &str| word(line, 7).parse::<u32>().unwrap();
    assert_eq!(command(&warm[0]) + 1, command(&warm[1]), "{warm:?}");
    let quality = run_dag(&db, &setlist, "spotify_quality").await;
    let tests = all_dbt_nodes_passed(&db, quality, "dbt_test_full_scan").await;
    assert!(tests >= 15, "{tests} full-scan tests");

    // A second batch: 5,000 replays of events gold already holds and 5,000 new ones.
    // The incremental models add the new plays once and quarantine the replays.
    let replay = simulation(&topic, 5_000);
    let fresh = tasks::simulate::Simulate {
        seed: 7,
        ..simulation(&topic, 5_000)
    };
    for more in [&replay, &fresh] {
        produce(
            more,
            CancellationToken::new(),
            Duration::from_secs(60),
            |_, _| {},
        )
        .await
        .unwrap();
    }
    land(&db, &sim, &dir, &store_options, 60_002).await;
    let second = run_dag(&db, &setlist, "spotify_pipeline").await;
    let gold: i64 = sqlx::query_scalar("SELECT count(*) FROM gold.fct_plays")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(gold, 55_000);
    regions_of(&fresh, 5_000, &mut expected);
    assert_eq!(gold_regions(&db).await, expected);
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM silver.int_plays__quarantined WHERE rejection_reason = 'duplicate event_id'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(duplicates, 5_000);
    all_dbt_nodes_passed(&db, second, "dbt_build").await;

    // The dashboard draws its charts from this gold, in headless Chromium.
    let port = common::free_port();
    let _web = Procs(vec![
        setlist(&[
            "web",
            "--public-reads",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    ]);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "setlist web did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dashboard = common::web::browse(&format!("{base}/analytics"), "analytics").await;
    assert!(
        dashboard.contains(r#"id="total-plays">55,000<"#),
        "{dashboard}"
    );
    assert_eq!(
        dashboard.matches(r#"data-drawn="true""#).count(),
        4,
        "{dashboard}"
    );
    // Pipeline health adds up: landed = bronze = silver + quarantine, silver = gold,
    // and the lander has read everything the broker holds.
    let health = common::web::browse(&format!("{base}/health"), "health").await;
    assert!(
        health.contains(r#"<strong id="lag">0</strong>"#),
        "{health}"
    );
    assert!(
        health.contains("</td><td>60,002</td><td>0</td><td>60,002</td><td>55,000</td><td>5,002</td><td>55,000</td></tr></tbody>"),
        "{health}"
    );
    let tracks = &dashboard[dashboard.find(r#"id="top-tracks""#).unwrap()..];
    assert_eq!(
        tracks
            .split("</tbody>")
            .next()
            .unwrap()
            .matches("<tr><td>")
            .count(),
        10
    );
    let quality = run_dag(&db, &setlist, "spotify_quality").await;
    all_dbt_nodes_passed(&db, quality, "dbt_test_full_scan").await;

    // A failing dbt test fails the task and names the test.
    sqlx::query("UPDATE gold.fct_plays SET ms_played = track_duration_ms + 1 WHERE event_id = (SELECT min(event_id) FROM gold.fct_plays)")
        .execute(&db.pool)
        .await
        .unwrap();
    // Through a warm dbt process and through a new `dbt` process alike.
    for warm in [true, false] {
        let task: tasks::dbt::Dbt = serde_json::from_value(serde_json::json!({
            "command": "test",
            "select": "ms_played_within_track",
            "project_dir": root.join("dbt"),
            "env": { "SETLIST_WAREHOUSE_DB": db_name },
            "dbt": common::dbt_binary(),
            "warm": warm,
        }))
        .unwrap();
        let ctx = orchestrator::TaskContext::adhoc(
            "adhoc",
            "dbt_test",
            orchestrator::LogSink::discard(),
            CancellationToken::new(),
        );
        let err = orchestrator::Task::run(&task, &ctx)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("dbt test failed: test.setlist.ms_played_within_track (fail)"),
            "warm {warm}: {err}"
        );
    }
}
