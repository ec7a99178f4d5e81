//! Apache Airflow 3.3.2 for the tests, from the virtualenv scripts/airflow.sh installs:
//! a migrated AIRFLOW_HOME of its own ([`AirflowHome`]), and a live Airflow on it
//! ([`LiveAirflow`]: api-server, scheduler, dag-processor and triggerer on PostgreSQL)
//! that stops, every process it started included, when dropped.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::web::TOKEN;

/// The airflow executable; a missing one fails the test and names the install command.
pub fn airflow_bin() -> PathBuf {
    PathBuf::from(super::tool(
        "SETLIST_AIRFLOW",
        "~/.cache/setlist/tools/airflow-3.3.2/bin/airflow",
        "eval \"$(scripts/airflow.sh)\"",
    ))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How long `airflow db migrate` may take on a busy 2-core machine.
const MIGRATE_LIMIT: Duration = Duration::from_secs(300);

/// A migrated AIRFLOW_HOME of its own and the environment its commands run with.
/// Removed when dropped, unless the test failed: then it is kept for its logs.
pub struct AirflowHome {
    home: TempDir,
    env: Vec<(String, String)>,
}

impl AirflowHome {
    /// `dags` is the DAGs folder; the plugins folder is the repository's, as docs/airflow.md
    /// tells users to install setlist_airflow.py. `setlist` is Setlist's base URL.
    pub async fn new(dags: &Path, setlist: &str, extra: &[(&str, String)]) -> Self {
        let home = tempfile::Builder::new()
            .prefix("airflow-home-")
            .tempdir()
            .unwrap();
        let port: u16 = setlist.rsplit(':').next().unwrap().parse().unwrap();
        let airflow = airflow_bin();
        let venv_bin = airflow.parent().unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("AIRFLOW_HOME", home.path().display().to_string()),
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
        let mut migrate = tokio::process::Command::from(this.command(&["db", "migrate"]));
        migrate.kill_on_drop(true);
        let out = tokio::time::timeout(MIGRATE_LIMIT, migrate.output())
            .await
            .unwrap_or_else(|_| panic!("airflow db migrate ran for more than {MIGRATE_LIMIT:?}"))
            .unwrap();
        assert!(
            out.status.success(),
            "airflow db migrate failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        this
    }

    pub fn path(&self) -> &Path {
        self.home.path()
    }

    /// `airflow ARGS` in this home, with nothing else of the test's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(airflow_bin());
        cmd.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .stdin(Stdio::null());
        cmd
    }

    /// The last lines of each log file this home's components wrote, for a failure message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in COMPONENTS {
            if let Ok(log) = std::fs::read_to_string(self.log(name)) {
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                text.push_str(&format!("--- {name}.log (last lines)\n{tail}\n"));
            }
        }
        text
    }

    fn log(&self, component: &str) -> PathBuf {
        self.path().join(format!("{component}.log"))
    }
}

impl Drop for AirflowHome {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.home.disable_cleanup(true);
            eprintln!(
                "Kept AIRFLOW_HOME {} for its logs.",
                self.home.path().display()
            );
        }
    }
}

/// The components of a live Airflow, each logging to `<name>.log` in its home.
const COMPONENTS: [&str; 4] = ["api-server", "scheduler", "dag-processor", "triggerer"];

/// A PostgreSQL database of its own for a live Airflow, as SQLAlchemy wants its URL.
/// Not SQLite: with several components writing at once, SQLite's "database is locked"
/// turns concurrent REST triggers into 500s.
async fn airflow_database() -> String {
    let url = super::create_database("airflow").await;
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .expect("a postgres:// URL");
    format!("postgresql+psycopg2://{rest}")
}

pub const AIRFLOW_USER: &str = "setlist";
pub const AIRFLOW_PASSWORD: &str = "airflow-test-password";

/// How long a live Airflow may take to answer and load its DAGs.
const START_LIMIT: Duration = Duration::from_secs(120);

/// A live Airflow. Its fields drop in order: the processes stop before their home and
/// the password file are removed.
pub struct LiveAirflow {
    stack: Stack,
    pub home: AirflowHome,
    _secrets: TempDir,
    pub base: String,
    http: reqwest::Client,
    token: String,
}

impl LiveAirflow {
    /// Starts Airflow on a free port with `dags` as its DAGs folder and the Connection
    /// `setlist_default` pointing at `setlist`; returns once it answers and has loaded
    /// each of `wait_for_dags`. Another port is tried when the chosen one was taken
    /// meanwhile.
    pub async fn start(dags: &Path, setlist: &str, wait_for_dags: &[&str]) -> Self {
        let database = airflow_database().await;
        let secrets = tempfile::Builder::new()
            .prefix("airflow-auth-")
            .tempdir()
            .unwrap();
        let passwords = secrets.path().join("passwords.json");
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
                super::free_port().to_string(),
            ),
            (
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
                super::free_port().to_string(),
            ),
        ];
        let home = AirflowHome::new(dags, setlist, &settings).await;
        let http = reqwest::Client::new();
        for _ in 0..3 {
            let base = format!("http://127.0.0.1:{}", super::free_port());
            let stack = Stack::start(&home, &base);
            match Self::wait_until_up(&home, &http, &base, wait_for_dags).await {
                Some(token) => {
                    return Self {
                        stack,
                        home,
                        _secrets: secrets,
                        base,
                        http,
                        token,
                    };
                }
                None => {
                    eprintln!("Airflow's port {base} was taken; trying another.");
                    drop(stack);
                    for name in COMPONENTS {
                        let _ = std::fs::remove_file(home.log(name));
                    }
                }
            }
        }
        panic!("Airflow found each of 3 free ports taken\n{}", home.logs());
    }

    /// Waits until Airflow logs in `AIRFLOW_USER` and has loaded `dags`; returns the JWT,
    /// or None when the API server could not listen on its port.
    async fn wait_until_up(
        home: &AirflowHome,
        http: &reqwest::Client,
        base: &str,
        dags: &[&str],
    ) -> Option<String> {
        let deadline = Instant::now() + START_LIMIT;
        let before = |what: &str| {
            assert!(
                Instant::now() < deadline,
                "{what} within {START_LIMIT:?}\n{}",
                home.logs()
            );
        };
        let token = loop {
            let answer = http
                .post(format!("{base}/auth/token"))
                .json(&json!({ "username": AIRFLOW_USER, "password": AIRFLOW_PASSWORD }))
                .send()
                .await;
            if let Ok(res) = answer
                && res.status().is_success()
            {
                break res.json::<Value>().await.unwrap()["access_token"]
                    .as_str()
                    .unwrap()
                    .to_string();
            }
            // uvicorn: "[Errno 98] error while attempting to bind on address ...:
            // address already in use", then the API server exits.
            let log = std::fs::read_to_string(home.log("api-server")).unwrap_or_default();
            if log.to_lowercase().contains("address already in use") {
                return None;
            }
            before("the Airflow API did not answer");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        for dag in dags {
            loop {
                let res = http
                    .get(format!("{base}/api/v2/dags/{dag}"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                if res.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                before(&format!("Airflow did not load DAG {dag}"));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Some(token)
    }

    /// `GET path` of Airflow's API as `AIRFLOW_USER`: the status and the JSON answer.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `METHOD path` with a JSON body as `AIRFLOW_USER`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The Airflow run `run_id` of `dag`, which must exist.
    pub async fn dag_run(&self, dag: &str, run_id: &str) -> Value {
        let (status, run) = self
            .get(&format!("/api/v2/dags/{dag}/dagRuns/{run_id}"))
            .await;
        assert_eq!(status, 200, "no Airflow run {run_id} of {dag}: {run}");
        run
    }
}

/// Airflow's components under a watchdog shell that leads their process group and ends
/// them when the test process dies without dropping this.
struct Stack {
    leader: std::process::Child,
}

impl Stack {
    fn start(home: &AirflowHome, base: &str) -> Self {
        let port = base.rsplit(':').next().unwrap();
        let script = r#"
            trap 'kill -TERM 0' EXIT
            airflow api-server --host 127.0.0.1 --port "$AIRFLOW__API__PORT" >"$AIRFLOW_HOME/api-server.log" 2>&1 &
            airflow scheduler --skip-serve-logs >"$AIRFLOW_HOME/scheduler.log" 2>&1 &
            airflow dag-processor >"$AIRFLOW_HOME/dag-processor.log" 2>&1 &
            airflow triggerer --skip-serve-logs >"$AIRFLOW_HOME/triggerer.log" 2>&1 &
            while kill -0 "$SETLIST_TEST_PID" 2>/dev/null; do sleep 1; done
        "#;
        let leader = Command::new("bash")
            .args(["-c", script])
            .env_clear()
            .envs(home.env.iter().map(|(k, v)| (k, v)))
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("AIRFLOW__API__PORT", port)
            .env("AIRFLOW__API__BASE_URL", base)
            // Without it every task calls the execution API on localhost:8080.
            .env(
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                format!("{base}/execution/"),
            )
            .env("SETLIST_TEST_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start bash");
        Self { leader }
    }
}

/// Stops every process the stack started. Not only its process group: Airflow 3's
/// task supervisor starts each task in a process group of its own, which a signal to
/// the group misses. So the tree below the watchdog is frozen (SIGSTOP, so nothing in
/// it forks or is orphaned meanwhile) and walked again until it stops growing; then
/// every process in it is asked to stop, and killed 5 s later.
impl Drop for Stack {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.leader.id() as i32);
        let mut tree: HashSet<Proc> = Proc::of(self.leader.id() as i32).into_iter().collect();
        loop {
            let known = tree.len();
            grow(&mut tree);
            for p in &tree {
                p.signal(Signal::SIGSTOP);
            }
            grow(&mut tree);
            if tree.len() == known {
                break;
            }
        }
        let _ = killpg(group, Signal::SIGTERM);
        for p in &tree {
            p.signal(Signal::SIGTERM);
            p.signal(Signal::SIGCONT);
        }
        let _ = killpg(group, Signal::SIGCONT);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // Reaped, the shell no longer counts as a member of the group.
            let _ = self.leader.try_wait();
            let group_gone = killpg(group, None).is_err();
            if (group_gone && !tree.iter().any(Proc::alive)) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = killpg(group, Signal::SIGKILL);
        for p in &tree {
            p.signal(Signal::SIGKILL);
        }
        let _ = self.leader.wait();
    }
}

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Proc {
    pid: i32,
    started: u64,
}

impl Proc {
    fn of(pid: i32) -> Option<Self> {
        stat(pid).map(|(_, started, _)| Self { pid, started })
    }

    /// Running (or stopped), and still this process; a zombie has ended.
    fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|(_, started, state)| started == self.started && state != 'Z')
    }

    fn signal(&self, signal: Signal) {
        if self.alive() {
            let _ = kill(Pid::from_raw(self.pid), signal);
        }
    }
}

/// A process's parent, start time (clock ticks after boot) and state, from
/// /proc/PID/stat.
fn stat(pid: i32) -> Option<(i32, u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces and parentheses itself.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    // Fields 3 (state), 4 (ppid) and 22 (starttime) of proc(5).
    let state = fields.first()?.chars().next()?;
    Some((
        fields.get(1)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
        state,
    ))
}

/// Adds to `tree` every process whose parent is in it, until there is no more.
fn grow(tree: &mut HashSet<Proc>) {
    let processes: HashMap<i32, (i32, u64)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter_map(|pid| stat(pid).map(|(ppid, started, _)| (pid, (ppid, started))))
        .collect();
    loop {
        let pids: HashSet<i32> = tree.iter().map(|p| p.pid).collect();
        let children: Vec<Proc> = processes
            .iter()
            .filter(|(pid, (ppid, _))| pids.contains(ppid) && !pids.contains(pid))
            .map(|(&pid, &(_, started))| Proc { pid, started })
            .collect();
        if children.is_empty() {
            return;
        }
        tree.extend(children);
    }
}
