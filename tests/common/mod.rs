//! What the integration tests share: a fresh PostgreSQL database per test, DAGs
//! from text, and a worker driven step by step.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use orchestrator::dag::parse_dag;
use orchestrator::store;
use orchestrator::worker::{Executed, Worker, WorkerConfig};
use orchestrator::{Dag, Registry};
use sqlx::PgPool;

/// Child processes that are killed when the test ends, pass or fail.
pub struct Procs(pub Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `setlist ARGS --dags-dir DAGS` against the test's database.
pub fn spawn_setlist(db: &TestDb, dags: &Path, args: &[&str]) -> std::process::Child {
    spawn_setlist_with(db, dags, args, &[])
}

/// [`spawn_setlist`] with more environment variables.
pub fn spawn_setlist_with(
    db: &TestDb,
    dags: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_setlist"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("--dags-dir")
        .arg(dags)
        .env("DATABASE_URL", &db.url)
        .env("SETLIST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start setlist")
}

/// `setlist dags trigger DAG` as a person would type it, after `setlist dags sync`
/// (the scheduler the test started may not have parsed the folder yet); panics unless
/// both succeed.
pub fn trigger_via_cli(db: &TestDb, dags: &Path, dag_id: &str) {
    trigger_via_cli_with(db, dags, dag_id, &[]);
}

/// [`trigger_via_cli`] with the environment (the connections) the other processes have.
pub fn trigger_via_cli_with(db: &TestDb, dags: &Path, dag_id: &str, env: &[(&str, String)]) {
    sync_via_cli_with(db, dags, env);
    cli_ok(db, dags, &["dags", "trigger", dag_id]);
}

/// `setlist dags sync`: records the DAG folder in the test's store, as a scheduler
/// does when it starts, for the commands and pages that read DAGs from the store.
pub fn sync_via_cli(db: &TestDb, dags: &Path) {
    sync_via_cli_with(db, dags, &[]);
}

fn sync_via_cli_with(db: &TestDb, dags: &Path, env: &[(&str, String)]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_setlist"))
        .args(["dags", "sync", "--dags-dir"])
        .arg(dags)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    // A folder with a broken file on purpose exits 1 after recording it.
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cli_ok(db: &TestDb, dags: &Path, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_setlist"))
        .args(args)
        .arg("--dags-dir")
        .arg(dags)
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the latest run of `dag_id` finishes; returns its state.
pub async fn wait_for_run(pool: &PgPool, dag_id: &str, limit: std::time::Duration) -> String {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let state: Option<String> = sqlx::query_scalar(
            "SELECT state::text FROM setlist.dag_runs WHERE dag_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(dag_id)
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(s) = state.filter(|s| matches!(s.as_str(), "success" | "failed" | "cancelled"))
        {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run of {dag_id} did not finish within {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A database of its own for one test, with the schema migrated.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
}

pub fn admin_url() -> String {
    std::env::var("SETLIST_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Creates an empty database named `setlist_t_<what>_<uuid>` (scripts/test.sh drops
/// what is left of such databases); returns its URL.
pub async fn create_database(what: &str) -> String {
    let admin = admin_url();
    let admin_pool = PgPool::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL does not answer at {admin}: {e}\nStart it with: scripts/postgres.sh")
    });
    let name = format!("setlist_t_{what}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin_pool)
        .await
        .unwrap_or_else(|e| panic!("Failed to create the database {name}: {e}"));
    admin_pool.close().await;
    let server = admin.rsplit_once('/').expect("a URL with a database").0;
    format!("{server}/{name}")
}

/// A port on 127.0.0.1 that was free a moment ago: a server started on it may still
/// find it taken, so a test that can should retry with another.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The dbt that scripts/dbt.sh installs (or SETLIST_DBT).
pub fn dbt_binary() -> String {
    tool(
        "SETLIST_DBT",
        "~/.cache/setlist/tools/dbt-1.11/bin/dbt",
        "scripts/dbt.sh",
    )
}

/// The path of a tool that a script in scripts/ installs: `var` when set, else
/// `default` (`~/` being the home folder). A missing tool fails the test and names the
/// command that installs it.
pub fn tool(var: &str, default: &str, install: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| match default.strip_prefix("~/") {
        Some(rest) => format!("{}/{rest}", std::env::var("HOME").unwrap_or_default()),
        None => default.to_string(),
    });
    let name = Path::new(&path)
        .file_name()
        .map_or(path.clone(), |n| n.to_string_lossy().to_string());
    assert!(
        Path::new(&path).exists(),
        "{name} is not installed at {path}. Install it with: {install}"
    );
    path
}

/// `addr` when a server answers there; panics with the command that starts it.
pub fn tool_port(addr: &str, start: &str) -> String {
    let answered = std::net::TcpStream::connect_timeout(
        &addr.parse().expect("host:port"),
        std::time::Duration::from_secs(2),
    );
    assert!(
        answered.is_ok(),
        "No server answers at {addr}. Start it with: {start}"
    );
    addr.to_string()
}

impl TestDb {
    pub async fn new() -> Self {
        let url = create_database("db").await;
        let pool = store::connect(&url, 20)
            .await
            .expect("connect to the test database");
        store::migrate(&pool).await.expect("migrate");
        Self { pool, url }
    }
}

pub fn registry() -> Arc<Registry> {
    Arc::new(tasks::registry())
}

/// A DAG from TOML text; panics with every problem if it does not validate.
pub fn dag(toml: &str) -> Dag {
    parse_dag(Path::new("test.toml"), toml, &registry()).unwrap_or_else(|errors| {
        panic!(
            "test DAG is invalid:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

pub async fn worker(db: &TestDb) -> Worker {
    Worker::register(db.pool.clone(), registry(), WorkerConfig::default())
        .await
        .expect("register a worker")
}

/// Runs task instances one by one until none is ready.
pub async fn drain(worker: &Worker) -> Vec<Executed> {
    let mut done = Vec::new();
    while let Some(e) = worker.try_execute_one().await.expect("a worker step") {
        done.push(e);
    }
    done
}

/// `task_id -> state` for a run.
pub async fn states(pool: &PgPool, run_id: i64) -> std::collections::BTreeMap<String, String> {
    sqlx::query_as::<_, (String, String)>(
        "SELECT task_id, state::text FROM setlist.task_instances WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

pub async fn run_state(pool: &PgPool, run_id: i64) -> String {
    sqlx::query_scalar("SELECT state::text FROM setlist.dag_runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Starts queued runs the way the scheduler does.
pub async fn start_runs(pool: &PgPool) -> usize {
    store::runs::start_queued(pool).await.unwrap()
}

/// Triggers a manual run of `dag` and starts it.
pub async fn trigger(db: &TestDb, dag: &Dag) -> i64 {
    let id = store::runs::trigger(&db.pool, dag, serde_json::json!({}), None)
        .await
        .unwrap();
    start_runs(&db.pool).await;
    id
}
pub mod airflow;
pub mod http;
pub mod streaming;
pub mod web;

/// The settings a process would hand its tasks, with `connections` (each `name = URL`).
pub fn settings_with(
    db: &TestDb,
    connections: &[(&str, String)],
) -> Arc<tasks::settings::Settings> {
    Arc::new(build_settings(db, connections))
}

fn build_settings(db: &TestDb, connections: &[(&str, String)]) -> tasks::settings::Settings {
    let connections = tasks::connection::Connections::new(connections.iter().map(|(name, url)| {
        tasks::connection::ConnectionSettings::from_url(url.clone())
            .resolve(name, &|_| None)
            .unwrap()
    }));
    tasks::settings::Settings::new(
        Default::default(),
        Default::default(),
        Default::default(),
        Default::default(),
        connections,
        orchestrator::DbUrl::new(db.url.clone()),
        db.pool.clone(),
    )
}

/// A worker whose attempts get `connections` (each `name = URL`).
pub async fn worker_with(db: &TestDb, connections: &[(&str, String)]) -> Worker {
    let settings = build_settings(db, connections);
    let names: Vec<String> = settings
        .connections
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let registry = Arc::new(tasks::registry().with_connections(names));
    Worker::register(
        db.pool.clone(),
        registry,
        WorkerConfig {
            resources: orchestrator::Resources::new().with(settings),
            ..WorkerConfig::default()
        },
    )
    .await
    .unwrap()
}

pub async fn output(db: &TestDb, run: i64, task: &str) -> serde_json::Value {
    sqlx::query_scalar(
        "SELECT output FROM setlist.task_instances WHERE run_id = $1 AND task_id = $2",
    )
    .bind(run)
    .bind(task)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

pub async fn error(db: &TestDb, run: i64, task: &str) -> String {
    sqlx::query_scalar(
        "SELECT a.error FROM setlist.attempts a JOIN setlist.task_instances t ON t.id = a.ti_id
         WHERE t.run_id = $1 AND t.task_id = $2",
    )
    .bind(run)
    .bind(task)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Runs everything that becomes ready until run `run_id` ends: starts queued runs (a
/// `trigger_dag` task's), and sleeps until the next due retry or poke. Panics with the
/// states after `limit`.
pub async fn run_to_end(
    db: &TestDb,
    worker: &Worker,
    run_id: i64,
    limit: std::time::Duration,
) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        start_runs(&db.pool).await;
        drain(worker).await;
        let state = run_state(&db.pool, run_id).await;
        if state == "success" || state == "failed" {
            return state;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run_id} is still {state} after {limit:?}: {:?}",
            states(&db.pool, run_id).await
        );
        let next = store::transitions::next_retry_at(&db.pool).await.unwrap();
        let wait = next
            .and_then(|at| (at - chrono::Utc::now()).to_std().ok())
            .unwrap_or(std::time::Duration::from_millis(20))
            .min(std::time::Duration::from_secs(1));
        tokio::time::sleep(wait).await;
    }
}
