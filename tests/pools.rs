//! Pools and worker queues on a real PostgreSQL with several workers: a pool's slots
//! are never exceeded under contention (tasks of one and two slots, two workers of four
//! slots each), every end gives the slots back (a lost worker's through the reaper),
//! and a task waits in its queue for a worker that serves it.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, dag, states, trigger};
use orchestrator::store::{pools, workers};
use orchestrator::worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

async fn worker_on(db: &TestDb, queues: &[&str], concurrency: usize) -> Arc<Worker> {
    Arc::new(
        Worker::register(
            db.pool.clone(),
            common::registry(),
            WorkerConfig {
                concurrency,
                queues: queues.iter().map(|q| q.to_string()).collect(),
                ..WorkerConfig::default()
            },
        )
        .await
        .unwrap(),
    )
}

async fn used(db: &TestDb, pool: &str) -> i32 {
    sqlx::query_scalar("SELECT used FROM setlist.pools WHERE name = $1")
        .bind(pool)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_pool_s_slots_are_never_exceeded_by_two_workers_racing_for_them() {
    let db = TestDb::new().await;
    pools::sync(&db.pool, &BTreeMap::from([("wh".to_string(), 3)]))
        .await
        .unwrap();
    let mut toml = String::from("[dag]\nid = \"contended\"\n");
    for i in 0..10 {
        let slots = if i % 4 == 0 { 2 } else { 1 };
        toml += &format!(
            "[[task]]\nid = \"t{i}\"\nkind = \"shell\"\npool = \"wh\"\npool_slots = {slots}\nparams = {{ command = \"sleep 0.15\" }}\n"
        );
    }
    toml += "[[task]]\nid = \"free\"\nkind = \"noop\"\n";
    let run = trigger(&db, &dag(&toml)).await;
    let stop = CancellationToken::new();
    let (a, b) = (
        worker_on(&db, &["default"], 4).await,
        worker_on(&db, &["default"], 4).await,
    );
    let handles = [
        tokio::spawn(a.run(stop.clone())),
        tokio::spawn(b.run(stop.clone())),
    ];
    assert_eq!(
        common::wait_for_run(&db.pool, "contended", Duration::from_secs(60)).await,
        "success"
    );
    stop.cancel();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    // At each task's start, the slots of the pool's tasks running then.
    let most: i64 = sqlx::query_scalar(
        "SELECT max((SELECT sum(b.pool_slots) FROM setlist.task_instances b
                     WHERE b.run_id = a.run_id AND b.pool = 'wh'
                       AND b.started_at <= a.started_at AND b.ended_at > a.started_at))
         FROM setlist.task_instances a WHERE a.run_id = $1 AND a.pool = 'wh'",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!((2..=3).contains(&most), "{most} slots in use at once");
    assert_eq!(used(&db, "wh").await, 0);
    let pool_rows = pools::list(&db.pool).await.unwrap();
    assert_eq!(
        (pool_rows[0].slots, pool_rows[0].used, pool_rows[0].waiting),
        (3, 0, 0)
    );
}

#[tokio::test]
async fn a_lost_worker_s_slots_come_back_through_the_reaper() {
    let db = TestDb::new().await;
    pools::sync(&db.pool, &BTreeMap::from([("one".to_string(), 1)]))
        .await
        .unwrap();
    let d = dag(
        "[dag]\nid = \"lost\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\npool = \"one\"\nretries = 1\nretry_delay = \"1ms\"\n[[task]]\nid = \"b\"\nkind = \"noop\"\npool = \"one\"\n",
    );
    let run = trigger(&db, &d).await;
    let gone = worker_on(&db, &["default"], 1).await;
    let claimed = gone.claim().await.unwrap().expect("a task");
    assert_eq!(used(&db, "one").await, 1);
    // The pool is full: another worker finds nothing to claim.
    let other = worker_on(&db, &["default"], 1).await;
    assert!(other.claim().await.unwrap().is_none());
    sqlx::query(
        "UPDATE setlist.workers SET last_heartbeat = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(gone.id())
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        workers::reap_lost(&db.pool, Duration::from_secs(30))
            .await
            .unwrap(),
        1
    );
    assert_eq!(used(&db, "one").await, 0);
    common::drain(&other).await;
    let s = states(&db.pool, run).await;
    assert_eq!(
        (s["a"].as_str(), s["b"].as_str()),
        ("success", "success"),
        "{claimed:?}"
    );
    assert_eq!(used(&db, "one").await, 0);
}

#[tokio::test]
async fn a_task_waits_in_its_queue_for_a_worker_that_serves_it() {
    let db = TestDb::new().await;
    let d =
        dag("[dag]\nid = \"queues\"\n[[task]]\nid = \"train\"\nkind = \"noop\"\nqueue = \"gpu\"\n");
    let run = trigger(&db, &d).await;
    let cpu = worker_on(&db, &["default"], 1).await;
    assert!(cpu.try_execute_one().await.unwrap().is_none());
    assert_eq!(states(&db.pool, run).await["train"], "queued");
    let served = workers::serving(&db.pool).await.unwrap();
    assert!(served.iter().all(|(q, _)| !q.contains(&"gpu".to_string())));
    let gpu = worker_on(&db, &["gpu", "default"], 1).await;
    let done = gpu
        .try_execute_one()
        .await
        .unwrap()
        .expect("the gpu worker claims it");
    assert_eq!(done.task_id, "train");
}

#[tokio::test]
async fn a_task_naming_a_pool_the_configuration_lacks_does_not_load() {
    let registry = tasks::registry().with_pools([("warehouse".to_string(), 2)]);
    let errors = orchestrator::dag::parse_dag(
        std::path::Path::new("pools.toml"),
        "[dag]\nid = \"p\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\npool = \"wharehouse\"\npool_slots = 0\n[[task]]\nid = \"b\"\nkind = \"noop\"\npool = \"warehouse\"\npool_slots = 3\n",
        &registry,
    )
    .unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "pools.toml:6:8: task `a` names no pool `wharehouse` (pools: warehouse); define it under [pools] in the configuration",
            "pools.toml:7:14: `pool_slots` in task `a` must be at least 1",
            "pools.toml:11:8: task `b` takes 3 slots of pool `warehouse`, which has 2: it could never run",
        ]
    );
}
