//! The `sql` task kind against real servers: a PostgreSQL database of its own reached
//! through a named connection, and the Snowflake emulator (fakesnow) that
//! scripts/snowflake.sh starts. Statements render their templates first, run in one
//! transaction (a failing one leaves nothing behind) unless told otherwise, and the
//! output holds the rows changed and, when asked, the first rows as JSON.

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::{TestDb, dag, drain, error, output, states, worker_with};
use orchestrator::worker::Worker;
use serde_json::json;

async fn run_once(db: &TestDb, w: &Worker, toml: &str) -> (i64, BTreeMap<String, String>) {
    let d = dag(toml);
    let at: DateTime<Utc> = "2026-03-01T06:00:00Z".parse().unwrap();
    let run = orchestrator::store::runs::trigger(&db.pool, &d, json!({}), Some(at))
        .await
        .unwrap();
    common::start_runs(&db.pool).await;
    drain(w).await;
    (run, states(&db.pool, run).await)
}

#[tokio::test]
async fn statements_run_on_postgres_in_one_transaction_with_templates_and_rows_as_json() {
    let db = TestDb::new().await;
    let warehouse = common::create_database("sqlwh").await;
    let w = worker_with(&db, &[("wh", warehouse.clone())]).await;
    let (run, states) = run_once(
        &db,
        &w,
        r#"
        [dag]
        id = "sql"
        params = { table = "daily" }
        [[task]]
        id = "create"
        kind = "sql"
        params = { connection = "wh", sql = "create table {{ params.table }} (id int, day date, note text); insert into {{ params.table }} values (1, '{{ ds }}', 'a;b'), (2, '{{ ds }}', null)" }
        [[task]]
        id = "read"
        kind = "sql"
        depends_on = ["create"]
        params = { connection = "wh", fetch = 1, sql = "select id, day, note, 1.50::numeric as n, true as ok, '{\"a\": [1]}'::jsonb as j, 2.5::float8 as f from daily order by id" }
        [[task]]
        id = "half"
        kind = "sql"
        depends_on = ["read"]
        params = { connection = "wh", sql = "insert into daily values (3, null, 'kept?'); insert into no_such_table values (1)" }
        [[task]]
        id = "each"
        kind = "sql"
        depends_on = ["read"]
        params = { connection = "wh", transaction = false, sql = "insert into daily values (4, null, 'kept'); insert into no_such_table values (1)" }
        "#,
    )
    .await;
    assert_eq!(states["create"], "success");
    assert_eq!(
        output(&db, run, "create").await,
        json!({ "statements": 2, "rows_affected": 2 })
    );
    assert_eq!(
        output(&db, run, "read").await,
        json!({
            "statements": 1,
            "rows_affected": 2,
            "rows": [{ "id": 1, "day": "2026-03-01", "note": "a;b", "n": "1.50", "ok": true, "j": { "a": [1] }, "f": 2.5 }],
        })
    );
    // rows_affected is what each statement reported: a SELECT its rows, both of them,
    // though fetch keeps one. In one transaction, the failing statement takes the
    // insert before it along;
    // statement by statement, the first one stays.
    assert_eq!(states["half"], "failed");
    assert!(
        error(&db, run, "half")
            .await
            .contains("relation \"no_such_table\" does not exist"),
        "{}",
        error(&db, run, "half").await
    );
    assert_eq!(states["each"], "failed");
    let wh = sqlx::PgPool::connect(&warehouse).await.unwrap();
    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM daily ORDER BY id")
        .fetch_all(&wh)
        .await
        .unwrap();
    assert_eq!(ids, [1, 2, 4]);
}

#[tokio::test]
async fn statements_run_on_snowflake_through_a_named_connection() {
    let db = TestDb::new().await;
    let fakesnow = common::tool_port("127.0.0.1:18444", "scripts/snowflake.sh");
    let database = format!("SQL_{}", uuid::Uuid::new_v4().simple()).to_uppercase();
    let w = worker_with(
        &db,
        &[(
            "sf",
            format!("snowflake://setlist:unused@fakesnow/{database}?endpoint=http://{fakesnow}"),
        )],
    )
    .await;
    let (run, states) = run_once(
        &db,
        &w,
        &format!(
            r#"
        [dag]
        id = "sf"
        [[task]]
        id = "build"
        kind = "sql"
        params = {{ connection = "sf", transaction = false, fetch = 5, sql = "create database if not exists {database}; use database {database}; create schema if not exists s; create table s.t (id int, day date); insert into s.t values (1, '{{{{ ds }}}}'), (2, '{{{{ ds }}}}'); select id, day from s.t order by id" }}
        "#
        ),
    )
    .await;
    assert_eq!(
        states["build"],
        "success",
        "{}",
        error(&db, run, "build").await
    );
    let out = output(&db, run, "build").await;
    assert_eq!(out["statements"], 6);
    assert_eq!(out["rows_affected"], 2);
    assert_eq!(out["rows"].as_array().unwrap().len(), 2);
    assert_eq!(out["rows"][0]["ID"], 1, "{out}");
}

#[test]
fn bad_sql_params_are_named_when_the_file_loads() {
    let registry = tasks::registry().with_connections(["wh".to_string()]);
    let dir = std::env::temp_dir().join(format!("setlist-sql-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.toml"),
        "[dag]\nid = \"bad\"\n[[task]]\nid = \"a\"\nkind = \"sql\"\nparams = { sql = \" \" }\n[[task]]\nid = \"b\"\nkind = \"sql\"\nparams = { sql = \"select 1\", fetch = 5000 }\n[[task]]\nid = \"c\"\nkind = \"sql\"\nparams = { sql = \"select 1\", connection = \"wh2\" }\n",
    )
    .unwrap();
    let bag = orchestrator::dag::load_dir(&dir, &registry);
    let errors: Vec<String> = bag
        .errors
        .iter()
        .map(|e| e.to_string().replace(&format!("{}/", dir.display()), ""))
        .collect();
    assert_eq!(
        errors,
        [
            "bad.toml:6:18: task `a`: params.sql: must hold at least one statement",
            "bad.toml:10:38: task `b`: params.fetch: must be at most 1000: the output is kept in the state store",
            "bad.toml:14:43: task `c`: params.connection: no connection named `wh2` (defined: wh)",
        ]
    );
}
