//! Setlist and Apache Airflow 3.3.2 driving each other, both for real: Airflow from the
//! virtualenv that scripts/airflow.sh installs, in a temporary AIRFLOW_HOME, and a
//! `setlist standalone --web` against the test's own database.
//!
//! - Airflow -> Setlist: `airflow dags test` of the adapter DAG in dags/airflow/ (on
//!   SQLite, the Connection in AIRFLOW_CONN_SETLIST_DEFAULT) runs a Setlist DAG that succeeds and one
//!   that fails, and both sides must agree on the outcome.
//! - Setlist -> Airflow: `airflow_dag` tasks run DAGs on a live Airflow (api-server,
//!   scheduler, dag-processor and triggerer on PostgreSQL), including the adapter DAG itself, which
//!   runs a Setlist DAG back, deferred to the triggerer.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::streaming::unique;
use common::web::TOKEN;
use common::{Procs, TestDb, spawn_setlist_with};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// The airflow executable; a missing one fails the test and names the install command.
fn airflow_bin() -> PathBuf {
    let path = std::env::var("SETLIST_AIRFLOW").unwrap_or_else(|_| {
        format!(
            "{}/.cache/setlist/tools/airflow-3.3.2/bin/airflow",
            std::env::var("HOME").unwrap()
        )
    });
    assert!(
        Path::new(&path).exists(),
        "Airflow is not installed at {path}. Install it with: eval \"$(scripts/airflow.sh)\""
    );
    PathBuf::from(path)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A migrated AIRFLOW_HOME of its own and the environment its commands run with.
struct AirflowHome {
    home: PathBuf,
    env: Vec<(String, String)>,
}

impl AirflowHome {
    /// `dags` is the DAGs folder; the plugins folder is the repository's, as docs/airflow.md
    /// tells users to install setlist_airflow.py. `setlist` is Setlist's base URL.
    fn new(dags: &Path, setlist: &str, extra: &[(&str, String)]) -> Self {
        let airflow = airflow_bin();
        let home = temp_dir("airflow-home");
        let port: u16 = setlist.rsplit(':').next().unwrap().parse().unwrap();
        let venv_bin = airflow.parent().unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("AIRFLOW_HOME", home.display().to_string()),
            (
                "PATH",
                format!(
                    "{}:{}",
                    venv_bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
            // Keeps __pycache__ out of the repository's dags/airflow.
            ("PYTHONDONTWRITEBYTECODE", "1".into()),
            ("AIRFLOW__CORE__LOAD_EXAMPLES", "False".into()),
            ("AIRFLOW__CORE__DAGS_FOLDER", dags.display().to_string()),
            (
                "AIRFLOW__CORE__PLUGINS_FOLDER",
                repo().join("dags/airflow/plugins").display().to_string(),
            ),
            (
                "AIRFLOW_CONN_SETLIST_DEFAULT",
                json!({
                    "conn_type": "http",
                    "host": "127.0.0.1",
                    "port": port,
                    "schema": "http",
                    "password": TOKEN,
                })
                .to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let this = Self { home, env };
        let out = this.command(&["db", "migrate"]).output().unwrap();
        assert!(
            out.status.success(),
            "airflow db migrate failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        this
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(airflow_bin());
        cmd.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .stdin(Stdio::null());
        cmd
    }

    /// The last lines of each log file this home's components wrote, for a failure message.
    fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["api-server", "scheduler", "dag-processor", "triggerer"] {
            if let Ok(log) = std::fs::read_to_string(self.home.join(format!("{name}.log"))) {
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                text.push_str(&format!("--- {name}.log (last lines)\n{tail}\n"));
            }
        }
        text
    }
}

/// A PostgreSQL database of its own for a live Airflow, as SQLAlchemy wants its URL.
/// Not SQLite: with several components writing at once, SQLite's "database is locked"
/// turns concurrent REST triggers into 500s. Named `setlist_t_*` so that
/// scripts/test.sh drops it with the other test databases.
async fn airflow_database() -> String {
    let admin = common::admin_url();
    let pool = sqlx::PgPool::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL does not answer at {admin}: {e}\nStart it with: scripts/postgres.sh")
    });
    let name = format!("setlist_t_airflow_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create Airflow's database");
    pool.close().await;
    let server = admin.rsplit_once('/').expect("a URL with a database").0;
    let server = server
        .strip_prefix("postgres://")
        .or_else(|| server.strip_prefix("postgresql://"))
        .expect("a postgres:// URL");
    format!("postgresql+psycopg2://{server}/{name}")
}

/// A live Airflow: its components in one process group, stopped when this is dropped,
/// and by a watchdog in that group when the test process dies without dropping it.
struct LiveAirflow {
    home: AirflowHome,
    base: String,
    group: Pid,
    /// The watchdog shell that leads the group.
    leader: std::process::Child,
    http: reqwest::Client,
    token: String,
}

const AIRFLOW_USER: &str = "setlist";
const AIRFLOW_PASSWORD: &str = "airflow-test-password";

impl LiveAirflow {
    async fn start(port: u16, dags: &Path, setlist: &str, wait_for_dags: &[&str]) -> Self {
        let base = format!("http://127.0.0.1:{port}");
        let database = airflow_database().await;
        let passwords = temp_dir("airflow-auth").join("passwords.json");
        std::fs::write(
            &passwords,
            json!({ AIRFLOW_USER: AIRFLOW_PASSWORD }).to_string(),
        )
        .unwrap();
        let settings = [
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", database),
            ("AIRFLOW__CORE__EXECUTOR", "LocalExecutor".to_string()),
            ("AIRFLOW__CORE__PARALLELISM", "6".into()),
            ("AIRFLOW__API__HOST", "127.0.0.1".into()),
            ("AIRFLOW__API__PORT", port.to_string()),
            ("AIRFLOW__API__BASE_URL", base.clone()),
            // Without it every task calls the execution API on localhost:8080.
            (
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                format!("{base}/execution/"),
            ),
            (
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                format!("{AIRFLOW_USER}:admin"),
            ),
            (
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
                passwords.display().to_string(),
            ),
            (
                "AIRFLOW__API_AUTH__JWT_SECRET",
                "setlist-test-jwt-secret-0123456789abcdef0123456789abcdef".into(),
            ),
            ("AIRFLOW__API__SECRET_KEY", "setlist-test-secret-key".into()),
            (
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                free_port().to_string(),
            ),
            (
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
                free_port().to_string(),
            ),
        ];
        let (dags, setlist) = (dags.to_path_buf(), setlist.to_string());
        let home =
            tokio::task::spawn_blocking(move || AirflowHome::new(&dags, &setlist, &settings))
                .await
                .unwrap();
        let script = r#"
            trap 'kill -TERM 0' EXIT
            airflow api-server --host 127.0.0.1 --port "$AIRFLOW__API__PORT" >"$AIRFLOW_HOME/api-server.log" 2>&1 &
            airflow scheduler --skip-serve-logs >"$AIRFLOW_HOME/scheduler.log" 2>&1 &
            airflow dag-processor >"$AIRFLOW_HOME/dag-processor.log" 2>&1 &
            airflow triggerer --skip-serve-logs >"$AIRFLOW_HOME/triggerer.log" 2>&1 &
            while kill -0 "$SETLIST_TEST_PID" 2>/dev/null; do sleep 1; done
        "#;
        let child = Command::new("bash")
            .args(["-c", script])
            .env_clear()
            .envs(home.env.iter().map(|(k, v)| (k, v)))
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("SETLIST_TEST_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start bash");
        let mut airflow = Self {
            home,
            base,
            group: Pid::from_raw(child.id() as i32),
            leader: child,
            http: reqwest::Client::new(),
            token: String::new(),
        };
        airflow.wait_until_up(wait_for_dags).await;
        airflow
    }

    async fn wait_until_up(&mut self, dags: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let login = format!("{}/auth/token", self.base);
        loop {
            let answer = self
                .http
                .post(&login)
                .json(&json!({ "username": AIRFLOW_USER, "password": AIRFLOW_PASSWORD }))
                .send()
                .await;
            if let Ok(res) = answer
                && res.status().is_success()
            {
                self.token = res.json::<Value>().await.unwrap()["access_token"]
                    .as_str()
                    .unwrap()
                    .to_string();
                break;
            }
            self.before(deadline, "the Airflow API did not answer");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for dag in dags {
            while self.get(&format!("/api/v2/dags/{dag}")).await.0 != 200 {
                self.before(deadline, &format!("Airflow did not load DAG {dag}"));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    fn before(&self, deadline: Instant, what: &str) {
        assert!(
            Instant::now() < deadline,
            "{what} within 120 s\n{}",
            self.home.logs()
        );
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for LiveAirflow {
    fn drop(&mut self) {
        let _ = killpg(self.group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // Reaped, the shell no longer counts as a member of the group.
            let _ = self.leader.try_wait();
            if killpg(self.group, None).is_err() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = killpg(self.group, Signal::SIGKILL);
        let _ = self.leader.wait();
    }
}

/// A `setlist standalone --web` on `port` with `dags` (file name, TOML) and `env`.
async fn setlist(
    port: u16,
    dags: &[(&str, &str)],
    env: &[(&str, String)],
) -> (TestDb, String, Procs) {
    let db = TestDb::new().await;
    let dir = temp_dir("airflow-setlist-dags");
    for (name, toml) in dags {
        std::fs::write(dir.join(name), toml).unwrap();
    }
    let bind = format!("127.0.0.1:{port}");
    let mut env = env.to_vec();
    env.push(("SETLIST_API_TOKEN", TOKEN.to_string()));
    let procs = Procs(vec![spawn_setlist_with(
        &db,
        &dir,
        &["standalone", "--web", &bind],
        &env,
    )]);
    let base = format!("http://{bind}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "setlist standalone did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (db, base, procs)
}

async fn setlist_run(base: &str, run_id: i64) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/runs/{run_id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A Setlist DAG that waits a little (so the adapter defers) and echoes its conf.
const SLOW_OK: &str = r#"
[dag]
id = "ok"

[[task]]
id = "echo_conf"
kind = "shell"
params = { command = "echo \"$SETLIST_CONF\"; sleep 3" }
"#;

/// A Setlist DAG that fails on purpose, and the task that cannot run after it.
const BROKEN: &str = r#"
[dag]
id = "broken"

[[task]]
id = "fail"
kind = "shell"
params = { command = "echo failing on purpose; exit 1" }

[[task]]
id = "after"
kind = "noop"
depends_on = ["fail"]
"#;

/// The Setlist run id in the adapter's "Triggered Setlist run N of DAG: URL" log line.
fn triggered_run(log: &str, dag: &str, setlist: &str) -> i64 {
    let start = log
        .find("Triggered Setlist run ")
        .unwrap_or_else(|| panic!("no trigger line in:\n{log}"))
        + "Triggered Setlist run ".len();
    let id: i64 = log[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let line = format!("Triggered Setlist run {id} of {dag}: {setlist}/runs/{id}");
    assert!(log.contains(&line), "no {line:?} in:\n{log}");
    id
}

#[tokio::test]
async fn the_adapter_dag_under_airflow_dags_test_runs_setlist_dags_and_fails_with_them() {
    airflow_bin();
    let (_db, setlist_base, _setlist) = setlist(
        free_port(),
        &[("ok.toml", SLOW_OK), ("broken.toml", BROKEN)],
        &[],
    )
    .await;
    // The shipped layout: dags/airflow is the DAGs folder (its .airflowignore skips
    // plugins/), dags/airflow/plugins the plugins folder.
    let dags = repo().join("dags/airflow");
    let (ok_home, broken_home) = tokio::join!(
        tokio::task::spawn_blocking({
            let (dags, base) = (dags.clone(), setlist_base.clone());
            move || AirflowHome::new(&dags, &base, &[])
        }),
        tokio::task::spawn_blocking({
            let (dags, base) = (dags.clone(), setlist_base.clone());
            move || AirflowHome::new(&dags, &base, &[])
        }),
    );
    let (ok_home, broken_home) = (ok_home.unwrap(), broken_home.unwrap());
    let dags_test = |home: &AirflowHome, args: &[&str]| {
        let mut cmd = tokio::process::Command::from(home.command(&["dags", "test", "setlist_run"]));
        cmd.args(args).kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(Duration::from_secs(150), cmd.output())
                .await
                .expect("airflow dags test ran for more than 150 s")
                .unwrap();
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status, log)
        }
    };
    let ok_conf = json!({ "setlist_dag_id": "ok", "conf": { "region": "EU" } }).to_string();
    let broken_conf = json!({ "setlist_dag_id": "broken" }).to_string();
    let ((ok_status, ok_log), (broken_status, broken_log)) = tokio::join!(
        dags_test(&ok_home, &["2026-05-01T17:00:00+00:00", "-c", &ok_conf]),
        dags_test(&broken_home, &["-c", &broken_conf]),
    );

    // Success: Airflow's run succeeded, after waiting deferred, and so did Setlist's,
    // which got the conf with the Airflow run's logical date and params.
    assert!(ok_status.success(), "{ok_log}");
    assert!(ok_log.contains("Pausing task as DEFERRED"), "{ok_log}");
    assert!(
        ok_log.contains("[DAG TEST] running trigger in line"),
        "{ok_log}"
    );
    assert!(
        ok_log.contains("DagRun Finished: dag_id=setlist_run") && ok_log.contains("state=success"),
        "{ok_log}"
    );
    let id = triggered_run(&ok_log, "ok", &setlist_base);
    let run = setlist_run(&setlist_base, id).await;
    assert_eq!(run["state"], "success", "{run}");
    let conf = &run["conf"];
    assert_eq!(conf["region"], "EU", "{conf}");
    assert_eq!(conf["airflow"]["dag_id"], "setlist_run", "{conf}");
    assert_eq!(conf["airflow"]["task_id"], "run_setlist_dag", "{conf}");
    assert_eq!(conf["airflow"]["try_number"], 1, "{conf}");
    assert_eq!(
        conf["airflow"]["logical_date"], "2026-05-01T17:00:00+00:00",
        "{conf}"
    );
    assert_eq!(
        conf["airflow"]["params"],
        json!({ "setlist_dag_id": "ok", "conf": { "region": "EU" } }),
        "{conf}"
    );
    assert!(
        conf["airflow"]["run_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("manual__")),
        "{conf}"
    );

    // Failure: both runs failed, and Airflow's log names the Setlist tasks that did.
    assert!(!broken_status.success(), "{broken_log}");
    assert!(broken_log.contains("DagRun failed"), "{broken_log}");
    let id = triggered_run(&broken_log, "broken", &setlist_base);
    assert_eq!(setlist_run(&setlist_base, id).await["state"], "failed");
    let why = format!(
        "Setlist run {id} of broken failed: failed tasks: fail (failed), after (upstream_failed); see {setlist_base}/runs/{id}"
    );
    assert!(broken_log.contains(&why), "no {why:?} in:\n{broken_log}");
}

/// Two tiny Airflow DAGs: one that does what its conf says (fail, sleep), one paused.
const PROBE_DAGS: &str = r#"
import time
from datetime import datetime

from airflow.sdk import dag, get_current_context, task


@dag(dag_id="setlist_probe", schedule=None, start_date=datetime(2026, 1, 1), is_paused_upon_creation=False)
def probe():
    @task
    def check():
        conf = get_current_context()["dag_run"].conf or {}
        print("conf:", conf)
        time.sleep(conf.get("sleep", 0))
        if conf.get("fail"):
            raise ValueError("asked to fail")
        return conf

    @task
    def done(conf):
        return "done"

    done(check())


probe()


@dag(dag_id="setlist_probe_paused", schedule=None, start_date=datetime(2026, 1, 1), is_paused_upon_creation=True)
def paused():
    @task
    def nothing():
        return None

    nothing()


paused()
"#;

/// Setlist's side: every way an `airflow_dag` task ends, and a round trip through the
/// adapter DAG (`setlist_run`, paused at creation as Airflow does by default).
const FROM_AIRFLOW: &str = r#"
[dag]
id = "from_airflow"

[defaults]
timeout = "3m"

[[task]]
id = "probe_ok"
kind = "airflow_dag"
params = { dag_id = "setlist_probe", poll_interval = "500ms" }

[[task]]
id = "probe_fails"
kind = "airflow_dag"
params = { dag_id = "setlist_probe", conf = { fail = true }, poll_interval = "500ms" }

[[task]]
id = "too_slow"
kind = "airflow_dag"
params = { dag_id = "setlist_probe", conf = { sleep = 120 }, poll_interval = "500ms", timeout = "4s" }

[[task]]
id = "paused"
kind = "airflow_dag"
params = { dag_id = "setlist_probe_paused" }

[[task]]
id = "missing"
kind = "airflow_dag"
params = { dag_id = "no_such_dag" }

[[task]]
id = "round_trip"
kind = "airflow_dag"
params = { dag_id = "setlist_run", unpause = true, conf = { setlist_dag_id = "ok", conf = { from = "setlist" } }, poll_interval = "1s" }
"#;

#[tokio::test]
async fn airflow_dag_tasks_run_airflow_dags_and_fail_with_them_and_the_adapter_runs_setlist_back() {
    airflow_bin();
    let airflow_dags = temp_dir("airflow-dags");
    std::fs::write(airflow_dags.join("probe.py"), PROBE_DAGS).unwrap();
    std::fs::copy(
        repo().join("dags/airflow/setlist_run.py"),
        airflow_dags.join("setlist_run.py"),
    )
    .unwrap();
    // Each side needs the other's URL, so both ports are chosen before either starts.
    let (setlist_port, airflow_port) = (free_port(), free_port());
    let setlist_base = format!("http://127.0.0.1:{setlist_port}");
    let airflow_base = format!("http://127.0.0.1:{airflow_port}");
    let env = [
        ("SETLIST_AIRFLOW_URL", airflow_base.clone()),
        ("SETLIST_AIRFLOW_USERNAME", AIRFLOW_USER.to_string()),
        ("SETLIST_AIRFLOW_PASSWORD", AIRFLOW_PASSWORD.to_string()),
    ];
    let ((db, _, _setlist), airflow) = tokio::join!(
        setlist(
            setlist_port,
            &[("ok.toml", SLOW_OK), ("from_airflow.toml", FROM_AIRFLOW)],
            &env
        ),
        LiveAirflow::start(
            airflow_port,
            &airflow_dags,
            &setlist_base,
            &["setlist_probe", "setlist_probe_paused", "setlist_run"],
        ),
    );

    let (status, body) = reqwest::Client::new()
        .post(format!("{setlist_base}/api/v1/dags/from_airflow/runs"))
        .bearer_auth(TOKEN)
        .json(&json!({ "conf": { "greeting": "hi" } }))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, 201);
    let run_id = body.json::<Value>().await.unwrap()["run_id"]
        .as_i64()
        .unwrap();
    let state = common::wait_for_run(&db.pool, "from_airflow", Duration::from_secs(150)).await;
    let states = common::states(&db.pool, run_id).await;
    let expected = [
        ("missing", "failed"),
        ("paused", "failed"),
        ("probe_fails", "failed"),
        ("probe_ok", "success"),
        ("round_trip", "success"),
        ("too_slow", "failed"),
    ];
    assert_eq!(
        states,
        expected
            .iter()
            .map(|(t, s)| (t.to_string(), s.to_string()))
            .collect(),
        "{}",
        airflow.home.logs()
    );
    assert_eq!(state, "failed");

    let log = |task: &'static str| {
        let pool = db.pool.clone();
        async move {
            orchestrator::store::logs::attempt(&pool, run_id, task, None)
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.line)
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let airflow_run = |task: &str| format!("setlist__from_airflow__{run_id}__{task}__try1");

    // Success: the Airflow run got the Setlist run's conf and succeeded; the attempt's
    // log links it and follows it to the end.
    let ok = log("probe_ok").await;
    let page = format!(
        "{airflow_base}/dags/setlist_probe/runs/{}",
        airflow_run("probe_ok")
    );
    assert!(
        ok.contains(&format!(
            "Triggered Airflow DAG setlist_probe as run {}: {page}",
            airflow_run("probe_ok")
        )),
        "{ok}"
    );
    assert!(
        ok.contains("is success: check=success, done=success."),
        "{ok}"
    );
    let (_, run) = airflow
        .get(&format!(
            "/api/v2/dags/setlist_probe/dagRuns/{}",
            airflow_run("probe_ok")
        ))
        .await;
    assert_eq!(run["state"], "success", "{run}");
    assert_eq!(run["conf"], json!({ "greeting": "hi" }), "{run}");

    // Failure: the Airflow run failed and the Setlist task names its failed tasks.
    let fails = log("probe_fails").await;
    let why = format!(
        "Airflow run {} of setlist_probe failed: failed tasks: check (failed), done (upstream_failed); see {airflow_base}/dags/setlist_probe/runs/{}",
        airflow_run("probe_fails"),
        airflow_run("probe_fails")
    );
    assert!(fails.contains(&why), "no {why:?} in:\n{fails}");
    let (_, run) = airflow
        .get(&format!(
            "/api/v2/dags/setlist_probe/dagRuns/{}",
            airflow_run("probe_fails")
        ))
        .await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["conf"], json!({ "fail": true }), "{run}");

    // The timeout param: Setlist stops waiting and stops the Airflow run too.
    let slow = log("too_slow").await;
    assert!(
        slow.contains(&format!(
            "Marked Airflow run {} failed: it did not end within 4s.",
            airflow_run("too_slow")
        )),
        "{slow}"
    );
    let (_, run) = airflow
        .get(&format!(
            "/api/v2/dags/setlist_probe/dagRuns/{}",
            airflow_run("too_slow")
        ))
        .await;
    assert_eq!(run["state"], "failed", "{run}");

    // What cannot run at all fails at once, saying why.
    let paused = log("paused").await;
    assert!(
        paused.contains("Airflow DAG setlist_probe_paused is paused, so its run would never start: unpause it, or set unpause = true"),
        "{paused}"
    );
    let missing = log("missing").await;
    assert!(
        missing.contains("Airflow has no DAG no_such_dag"),
        "{missing}"
    );

    // The round trip: Setlist -> Airflow's adapter DAG (unpaused by the task) -> a
    // Setlist run of `ok`, waited for in Airflow's triggerer, with the conf passed along.
    let trip = log("round_trip").await;
    assert!(trip.contains("Unpaused Airflow DAG setlist_run."), "{trip}");
    let (_, tis) = airflow
        .get(&format!(
            "/api/v2/dags/setlist_run/dagRuns/{}/taskInstances",
            airflow_run("round_trip")
        ))
        .await;
    assert_eq!(tis["task_instances"][0]["state"], "success", "{tis}");
    let ok_run: (i64, String, Value) = sqlx::query_as(
        "SELECT id, state, conf FROM setlist.dag_runs WHERE dag_id = 'ok' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(ok_run.1, "success");
    assert_eq!(ok_run.2["from"], "setlist", "{}", ok_run.2);
    assert_eq!(ok_run.2["airflow"]["dag_id"], "setlist_run", "{}", ok_run.2);
    assert_eq!(
        ok_run.2["airflow"]["run_id"],
        airflow_run("round_trip"),
        "{}",
        ok_run.2
    );
}
