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
//!
//! The two tests take turns (each starts Airflow processes with deadlines of their own);
//! tests/common/airflow.rs starts and stops Airflow.

mod common;

use std::time::{Duration, Instant};

use common::airflow::{AIRFLOW_PASSWORD, AIRFLOW_USER, AirflowHome, LiveAirflow, airflow_bin};
use common::web::TOKEN;
use common::{Procs, TestDb, spawn_setlist_with};
use serde_json::{Value, json};
use tempfile::TempDir;

/// One test at a time: each starts Airflow processes whose deadlines assume they do not
/// share the machine's cores with another test's.
static ONE_AIRFLOW_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A live `setlist standalone --web`; its processes stop, and its DAG folder goes,
/// when it is dropped.
struct Setlist {
    db: TestDb,
    base: String,
    _procs: Procs,
    _dags: TempDir,
}

/// A `setlist standalone --web` on `port` with `dags` (file name, TOML) and `env`.
async fn setlist(port: u16, dags: &[(&str, &str)], env: &[(&str, String)]) -> Setlist {
    let db = TestDb::new().await;
    let dir = tempfile::Builder::new()
        .prefix("airflow-setlist-dags-")
        .tempdir()
        .unwrap();
    for (name, toml) in dags {
        std::fs::write(dir.path().join(name), toml).unwrap();
    }
    let bind = format!("127.0.0.1:{port}");
    let mut env = env.to_vec();
    env.push(("SETLIST_API_TOKEN", TOKEN.to_string()));
    let procs = Procs(vec![spawn_setlist_with(
        &db,
        dir.path(),
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
    Setlist {
        db,
        base,
        _procs: procs,
        _dags: dir,
    }
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

/// The Airflow run id in `airflow_dag`'s "Triggered Airflow DAG D as run R: URL" line.
fn triggered_airflow_run(log: &str, dag: &str) -> String {
    let start = format!("Triggered Airflow DAG {dag} as run ");
    let at = log
        .find(&start)
        .unwrap_or_else(|| panic!("no {start:?} in:\n{log}"));
    log[at + start.len()..]
        .split(':')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_adapter_dag_under_airflow_dags_test_runs_setlist_dags_and_fails_with_them() {
    airflow_bin();
    let _turn = ONE_AIRFLOW_AT_A_TIME.lock().await;
    let setlist = setlist(
        common::free_port(),
        &[("ok.toml", SLOW_OK), ("broken.toml", BROKEN)],
        &[],
    )
    .await;
    let setlist_base = setlist.base.clone();
    // The shipped layout: dags/airflow is the DAGs folder (its .airflowignore skips
    // plugins/), dags/airflow/plugins the plugins folder.
    let dags = repo().join("dags/airflow");
    let (ok_home, broken_home) = tokio::join!(
        AirflowHome::new(&dags, &setlist_base, &[]),
        AirflowHome::new(&dags, &setlist_base, &[]),
    );
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
    let _turn = ONE_AIRFLOW_AT_A_TIME.lock().await;
    let airflow_dags = tempfile::Builder::new()
        .prefix("airflow-dags-")
        .tempdir()
        .unwrap();
    std::fs::write(airflow_dags.path().join("probe.py"), PROBE_DAGS).unwrap();
    std::fs::copy(
        repo().join("dags/airflow/setlist_run.py"),
        airflow_dags.path().join("setlist_run.py"),
    )
    .unwrap();
    // Each side needs the other's URL: Setlist's port is chosen first, then Airflow
    // starts (on another port if the one it chose was taken meanwhile), then Setlist.
    let setlist_port = common::free_port();
    let setlist_base = format!("http://127.0.0.1:{setlist_port}");
    let airflow = LiveAirflow::start(
        airflow_dags.path(),
        &setlist_base,
        &["setlist_probe", "setlist_probe_paused", "setlist_run"],
    )
    .await;
    let airflow_base = airflow.base.clone();
    let env = [
        ("SETLIST_AIRFLOW_URL", airflow_base.clone()),
        ("SETLIST_AIRFLOW_USERNAME", AIRFLOW_USER.to_string()),
        ("SETLIST_AIRFLOW_PASSWORD", AIRFLOW_PASSWORD.to_string()),
    ];
    let setlist = setlist(
        setlist_port,
        &[("ok.toml", SLOW_OK), ("from_airflow.toml", FROM_AIRFLOW)],
        &env,
    )
    .await;
    let db = &setlist.db;

    // The run id probe_ok's first try will want, taken already by a run that is not
    // Setlist's (as after a reset of Setlist's database, or with two Setlists sharing
    // this Airflow). The test's database is new, so the run below is run 1.
    let taken = "setlist__from_airflow__1__probe_ok__try1";
    let (status, answer) = airflow
        .call(
            reqwest::Method::POST,
            "/api/v2/dags/setlist_probe/dagRuns",
            Some(&json!({ "dag_run_id": taken, "logical_date": null, "conf": { "from": "elsewhere" } })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

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
    assert_eq!(run_id, 1, "the clash above assumed run 1");
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

    // Success: the Airflow run got the Setlist run's conf, with the key `setlist`
    // naming the attempt, and succeeded; the attempt's log links it and follows it to
    // the end. Its first run id was taken by a run that is not this attempt's: that
    // one is left alone, and the run is triggered under an id of its own.
    let ok = log("probe_ok").await;
    assert!(
        ok.contains(&format!(
            "Airflow run {taken} exists already and is not this attempt's (its conf has no Setlist attempt); triggering as {taken}__"
        )),
        "{ok}"
    );
    let own = triggered_airflow_run(&ok, "setlist_probe");
    assert!(
        own.starts_with(&format!("{taken}__")) && own.len() == taken.len() + 10,
        "{own}"
    );
    assert!(
        ok.contains(&format!(
            "Triggered Airflow DAG setlist_probe as run {own}: {airflow_base}/dags/setlist_probe/runs/{own}"
        )),
        "{ok}"
    );
    assert!(
        ok.contains("is success: check=success, done=success."),
        "{ok}"
    );
    let run = airflow.dag_run("setlist_probe", &own).await;
    assert_eq!(run["state"], "success", "{run}");
    assert_eq!(run["conf"]["greeting"], "hi", "{run}");
    let attempt = &run["conf"]["setlist"];
    assert_eq!(
        (
            &attempt["dag_id"],
            &attempt["run_id"],
            &attempt["task_id"],
            &attempt["try_number"]
        ),
        (
            &json!("from_airflow"),
            &json!(1),
            &json!("probe_ok"),
            &json!(1)
        ),
        "{run}"
    );
    assert_eq!(
        airflow.dag_run("setlist_probe", taken).await["conf"],
        json!({ "from": "elsewhere" })
    );

    // Failure: the Airflow run failed and the Setlist task names its failed tasks.
    let fails = log("probe_fails").await;
    let why = format!(
        "Airflow run {} of setlist_probe failed: failed tasks: check (failed), done (upstream_failed); see {airflow_base}/dags/setlist_probe/runs/{}",
        airflow_run("probe_fails"),
        airflow_run("probe_fails")
    );
    assert!(fails.contains(&why), "no {why:?} in:\n{fails}");
    let run = airflow
        .dag_run("setlist_probe", &airflow_run("probe_fails"))
        .await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["conf"]["fail"], true, "{run}");

    // The timeout param: Setlist stops waiting and stops the Airflow run too.
    let slow = log("too_slow").await;
    assert!(
        slow.contains(&format!(
            "Marked Airflow run {} failed: it did not end within 4s.",
            airflow_run("too_slow")
        )),
        "{slow}"
    );
    let run = airflow
        .dag_run("setlist_probe", &airflow_run("too_slow"))
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
        "SELECT id, state::text, conf FROM setlist.dag_runs WHERE dag_id = 'ok' ORDER BY id DESC LIMIT 1",
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
