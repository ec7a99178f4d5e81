//! A `setlist web` process on a free port against a test database of its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

use super::{Procs, TestDb, spawn_setlist_with};

pub const TOKEN: &str = "test-token-0123456789";

pub struct Api {
    pub base: String,
    pub client: Client,
    _procs: Procs,
    pub db: TestDb,
}

/// A DAG folder with the shipped `hello` and one broken file.
pub fn dags() -> PathBuf {
    let dir = std::env::temp_dir().join(super::streaming::unique("api-dags"));
    std::fs::create_dir_all(&dir).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("dags/hello.toml"), dir.join("hello.toml")).unwrap();
    std::fs::write(
        dir.join("broken.toml"),
        "[dag]\nid = \"broken\"\nschedule = \"61 * * * *\"\n",
    )
    .unwrap();
    dir
}

pub async fn serve(extra: &[&str]) -> Api {
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let mut args = vec!["web", "--bind", bind.as_str()];
    args.extend_from_slice(extra);
    let procs = Procs(vec![spawn_setlist_with(
        &db,
        &dags(),
        &args,
        &[("SETLIST_API_TOKEN", TOKEN.to_string())],
    )]);
    let base = format!("http://{bind}");
    let client = Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "setlist web did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Api {
        base,
        client,
        _procs: procs,
        db,
    }
}

impl Api {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} answered {status} with non-JSON {text:?}: {e}"));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(TOKEN), None).await
    }

    pub async fn post(&self, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(TOKEN), body).await
    }
}

pub fn chromium() -> String {
    let path = std::env::var("SETLIST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "Chromium is not installed at {path}. Install it with: scripts/chromium.sh"
    );
    path
}

/// Loads `url` in a fresh headless Chromium; returns the DOM after scripts ran,
/// and keeps a screenshot as `name`.png.
pub async fn browse(url: &str, name: &str) -> String {
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = std::env::temp_dir().join(super::streaming::unique("chromium"));
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--window-size=1280,800",
    ];
    let run = |extra: Vec<String>| {
        let mut c = tokio::process::Command::new(chromium());
        c.args(flags)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url);
        c
    };
    let shot = run(vec![format!(
        "--screenshot={}",
        shots.join(format!("{name}.png")).display()
    )])
    .output()
    .await
    .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let dom = run(vec!["--dump-dom".into()]).output().await.unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    std::fs::remove_dir_all(&profile).ok();
    String::from_utf8(dom.stdout).unwrap()
}
