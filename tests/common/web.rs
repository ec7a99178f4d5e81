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
    serve_dags(&dags(), extra).await
}

/// `setlist web` over the DAG folder `dags`.
pub async fn serve_dags(dags: &std::path::Path, extra: &[&str]) -> Api {
    serve_dags_env(dags, extra, &[]).await
}

/// `setlist web` over `dags` with more environment variables.
pub async fn serve_dags_env(dags: &std::path::Path, extra: &[&str], env: &[(&str, String)]) -> Api {
    let db = TestDb::new().await;
    // The web server reads DAGs from the store; a scheduler would have recorded them.
    super::sync_via_cli(&db, dags);
    let port = super::free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut args = vec!["web", "--bind", bind.as_str()];
    args.extend_from_slice(extra);
    let mut env = env.to_vec();
    env.push(("SETLIST_API_TOKEN", TOKEN.to_string()));
    let procs = Procs(vec![spawn_setlist_with(&db, dags, &args, &env)]);
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
    super::tool(
        "SETLIST_CHROMIUM",
        "/usr/bin/chromium",
        "scripts/chromium.sh",
    )
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

pub fn chromedriver() -> String {
    super::tool(
        "SETLIST_CHROMEDRIVER",
        "/usr/bin/chromedriver",
        "scripts/chromium.sh",
    )
}

/// A headless Chromium driven over WebDriver (Debian's chromedriver), for tests that
/// click; the driver stops when this is dropped.
pub struct Browser {
    pub client: fantoccini::Client,
    _driver: Procs,
    shots: PathBuf,
}

impl Browser {
    pub async fn start() -> Self {
        let port = super::free_port();
        let driver = std::process::Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Procs(vec![driver]);
        let profile = std::env::temp_dir().join(super::streaming::unique("chromium"));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--no-first-run",
                         "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.display())],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match fantoccini::ClientBuilder::rustls()
                .expect("rustls")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "chromedriver did not start: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            _driver: driver,
            shots,
        }
    }

    /// Keeps a screenshot of the page as `name`.png in target/screenshots.
    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits (up to 30 s) until the first element matching `css` has text for
    /// which `ok` holds; reloads and redirects may happen meanwhile.
    pub async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        loop {
            if let Ok(e) = self.client.find(fantoccini::Locator::Css(css)).await
                && let Ok(t) = e.text().await
            {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never read as wanted; last {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }
}
