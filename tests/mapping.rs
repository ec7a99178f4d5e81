//! Dynamic task mapping on a real PostgreSQL: a task with `map_over` becomes one
//! instance per element of a list (an upstream output, the run's params or conf, or
//! the file's), each rendering `{{ element }}` and `{{ map_index }}`; the mapped task
//! ends with the last instance, its output their outputs in order; `max_active_mapped`
//! caps how many run at once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, dag, error, output, run_state, run_to_end, states, worker};
use orchestrator::worker::{Worker, WorkerConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_mapped_task_runs_once_per_element_and_hands_its_outputs_on_in_order() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "fan"
        [[task]]
        id = "list"
        kind = "python"
        params = { code = "print('{\"files\": [\"a.csv\", \"b.csv\", \"c.csv\"]}')" }
        [[task]]
        id = "process"
        kind = "shell"
        depends_on = ["list"]
        map_over = "upstream.list.output.files"
        params = { command = "echo {{ map_index }}:{{ element }}:{{ upstream.list.output.files | length }}" }
        [[task]]
        id = "count"
        kind = "python"
        depends_on = ["process"]
        params = { code = "import json, os\nctx = json.load(open(os.environ['SETLIST_CONTEXT_FILE']))\nprint(json.dumps([o['last_line'] for o in ctx['upstream']['process']]))" }
    "#);
    let run = common::trigger(&db, &d).await;
    let w = worker(&db).await;
    assert_eq!(run_to_end(&db, &w, run, LIMIT).await, "success");
    let s = states(&db.pool, run).await;
    assert_eq!(s.len(), 6, "{s:?}");
    for i in 0..3 {
        assert_eq!(s[&format!("process[{i}]")], "success");
    }
    assert_eq!(
        output(&db, run, "count").await,
        json!(["0:a.csv:3", "1:b.csv:3", "2:c.csv:3"])
    );
    assert_eq!(
        output(&db, run, "process").await[2],
        json!({ "exit_code": 0, "last_line": "2:c.csv:3" })
    );
    let log = orchestrator::store::logs::attempt(&db.pool, run, "process", None)
        .await
        .unwrap();
    assert_eq!(log.last().unwrap().line, "Mapped into 3 instance(s).");
}

#[tokio::test]
async fn params_conf_and_literal_lists_map_an_empty_list_skips_and_a_failed_instance_fails_the_task()
 {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "lists"
        params = { regions = ["eu", "us"] }
        [[task]]
        id = "by_region"
        kind = "shell"
        map_over = "params.regions"
        params = { command = "test {{ element }} != us" }
        [[task]]
        id = "after_regions"
        kind = "noop"
        depends_on = ["by_region"]
        [[task]]
        id = "by_day"
        kind = "noop"
        map_over = "conf.days"
        [[task]]
        id = "after_days"
        kind = "noop"
        depends_on = ["by_day"]
        [[task]]
        id = "literal"
        kind = "noop"
        map_over = [1, 2, 3, 4]
        [[task]]
        id = "not_a_list"
        kind = "noop"
        map_over = "conf.one"
    "#);
    let run =
        orchestrator::store::runs::trigger(&db.pool, &d, json!({ "days": [], "one": 1 }), None)
            .await
            .unwrap();
    let w = worker(&db).await;
    assert_eq!(run_to_end(&db, &w, run, LIMIT).await, "failed");
    let s = states(&db.pool, run).await;
    assert_eq!(
        (
            s["by_region[0]"].as_str(),
            s["by_region[1]"].as_str(),
            s["by_region"].as_str(),
            s["after_regions"].as_str()
        ),
        ("success", "failed", "failed", "upstream_failed")
    );
    assert_eq!(
        (s["by_day"].as_str(), s["after_days"].as_str()),
        ("skipped", "skipped")
    );
    assert_eq!(s["literal"], "success");
    assert_eq!(
        output(&db, run, "literal").await,
        json!([null, null, null, null])
    );
    assert_eq!(s["not_a_list"], "failed");
    assert_eq!(
        error(&db, run, "not_a_list").await,
        "map_over conf.one is not a list: it is 1"
    );
}

#[tokio::test]
async fn max_active_mapped_caps_the_instances_running_at_once() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "capped"
        [[task]]
        id = "slow"
        kind = "shell"
        map_over = [1, 2, 3, 4, 5, 6]
        max_active_mapped = 2
        params = { command = "sleep 0.2" }
    "#);
    let run = common::trigger(&db, &d).await;
    let w = Arc::new(
        Worker::register(
            db.pool.clone(),
            common::registry(),
            WorkerConfig {
                concurrency: 8,
                ..WorkerConfig::default()
            },
        )
        .await
        .unwrap(),
    );
    let stop = CancellationToken::new();
    let handle = tokio::spawn(Arc::clone(&w).run(stop.clone()));
    common::wait_for_run(&db.pool, "capped", LIMIT).await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(run_state(&db.pool, run).await, "success");
    // The most instances whose [start, end) overlap one instance's start.
    let most: i64 = sqlx::query_scalar(
        "SELECT max((SELECT count(*) FROM setlist.task_instances b
                     WHERE b.run_id = a.run_id AND b.map_parent = 'slow'
                       AND b.started_at <= a.started_at AND b.ended_at > a.started_at))
         FROM setlist.task_instances a WHERE a.run_id = $1 AND a.map_parent = 'slow'",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(most, 2);
}

#[tokio::test]
async fn clearing_a_mapped_task_maps_it_again_and_one_instance_cannot_be_cleared() {
    let db = TestDb::new().await;
    let d = dag(r#"
        [dag]
        id = "again"
        [[task]]
        id = "m"
        kind = "noop"
        map_over = "conf.items"
    "#);
    let run =
        orchestrator::store::runs::trigger(&db.pool, &d, json!({ "items": ["x", "y"] }), None)
            .await
            .unwrap();
    let w = worker(&db).await;
    run_to_end(&db, &w, run, LIMIT).await;
    let e = orchestrator::store::transitions::clear(&db.pool, run, &["m[1]".into()], false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is one instance of the mapped task `m`: clear or mark `m`"),
        "{e}"
    );
    orchestrator::store::transitions::clear(&db.pool, run, &["m".into()], false)
        .await
        .unwrap();
    assert_eq!(states(&db.pool, run).await.len(), 1);
    assert_eq!(run_to_end(&db, &w, run, LIMIT).await, "success");
    assert_eq!(states(&db.pool, run).await.len(), 3);
}

#[tokio::test]
async fn a_bad_map_over_or_an_element_outside_a_mapped_task_is_a_load_error() {
    let errors = orchestrator::dag::parse_dag(
        std::path::Path::new("maps.toml"),
        r#"[dag]
id = "maps"
[[task]]
id = "a"
kind = "noop"
map_over = "upstream.nobody.output.x"
[[task]]
id = "b"
kind = "shell"
params = { command = "echo {{ element }}" }
[[task]]
id = "c"
kind = "noop"
max_active_mapped = 3
[[task]]
id = "d"
kind = "noop"
map_over = 7
"#,
        &common::registry(),
    )
    .unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "maps.toml:6:12: invalid map_over \"upstream.nobody.output.x\" in task `a`: `nobody` is not one of its upstream tasks (depends_on)",
            "maps.toml:10:22: task `b`: params.command: template: `element` is a mapped instance's; this task has no `map_over`",
            "maps.toml:14:21: `max_active_mapped` in task `c` limits a mapped task: add `map_over`",
            "maps.toml:18:12: `map_over` in task `d` must be a list or a path such as \"upstream.t.output.files\", found 7",
        ]
    );
}
