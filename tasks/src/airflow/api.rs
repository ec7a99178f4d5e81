//! Airflow's stable REST API as the `airflow_dag` task calls it: the version's paths
//! (`/api/v2` for Airflow 3, `/api/v1` for Airflow 2), its auth, its errors, and which
//! failures are worth asking again.

use std::time::Duration;

use anyhow::Context;
use orchestrator::TaskContext;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

/// Airflow's base URL, checked: http(s) and able to take path segments.
pub(super) fn base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("is not a URL ({e}): {text:?}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(format!("must be an http:// or https:// URL, not {text:?}"));
    }
    Ok(url)
}

/// One Airflow REST API: its version's paths, auth and page URLs.
#[derive(Debug)]
pub(super) struct Api {
    base: Url,
    pub(super) version: u8,
    http: reqwest::Client,
    auth: Auth,
}

/// How to prove who we are to Airflow.
#[derive(Debug)]
pub(super) enum Auth {
    None,
    Basic {
        user: String,
        password: String,
    },
    /// Airflow 3's JWT from `POST /auth/token`, issued again once when Airflow refuses
    /// it (401 or 403: it expired).
    Login {
        user: String,
        password: String,
        token: Option<String>,
    },
    Token(String),
}

/// A call Airflow refused, or that got no answer.
#[derive(Debug)]
pub(super) struct CallError {
    method: Method,
    url: Url,
    pub(super) status: Option<StatusCode>,
    what: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.method, self.url, self.what)
    }
}

impl std::error::Error for CallError {}

impl CallError {
    /// No answer, a 5xx or a 429: worth asking again at the next poll.
    pub(super) fn transient(&self) -> bool {
        self.status
            .is_none_or(|s| s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS)
    }
}

impl Api {
    pub(super) fn new(base: Url, version: u8, auth: Auth) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .context("Failed to build an HTTP client")?;
        Ok(Self {
            base,
            version,
            http,
            auth,
        })
    }

    /// The URL of `segments` under the API's prefix, each segment percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let prefix = if self.version == 2 { "v1" } else { "v2" };
        join(&self.base, &[&["api", prefix], segments].concat())
    }

    /// The run's page in Airflow's UI.
    pub(super) fn run_page(&self, dag_id: &str, run_id: &str) -> Url {
        if self.version == 2 {
            let mut url = join(&self.base, &["dags", dag_id, "grid"]);
            url.query_pairs_mut().append_pair("dag_run_id", run_id);
            url
        } else {
            join(&self.base, &["dags", dag_id, "runs", run_id])
        }
    }

    async fn login(&mut self) -> Result<(), CallError> {
        let Auth::Login {
            user,
            password,
            token,
        } = &mut self.auth
        else {
            return Ok(());
        };
        let url = join(&self.base, &["auth", "token"]);
        let answer = send(
            self.http
                .post(url.clone())
                .json(&json!({ "username": user, "password": password })),
            Method::POST,
            url,
        )
        .await?;
        *token = answer["access_token"].as_str().map(String::from);
        Ok(())
    }

    pub(super) async fn call(
        &mut self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        if matches!(self.auth, Auth::Login { token: None, .. }) {
            self.login().await?;
        }
        let url = self.endpoint(segments);
        let request = |api: &Api| {
            let mut req = api.http.request(method.clone(), url.clone());
            req = match &api.auth {
                Auth::None => req,
                Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
                Auth::Login { token, .. } => req.bearer_auth(token.as_deref().unwrap_or("")),
                Auth::Token(token) => req.bearer_auth(token),
            };
            if let Some(b) = body {
                req = req.json(b);
            }
            req
        };
        match send(request(self), method.clone(), url.clone()).await {
            // An expired or refused JWT: Airflow 3 answers 403 to a bad token, 401 to none.
            Err(e)
                if matches!(
                    e.status,
                    Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
                ) && matches!(self.auth, Auth::Login { .. }) =>
            {
                self.login().await?;
                send(request(self), method, url).await
            }
            other => other,
        }
    }

    /// [`Api::call`], asked again after a transient failure (no answer, a 5xx, a 429)
    /// up to three times, 1 s, 2 s and 4 s later, each retry logged. Safe for the
    /// trigger too: a run id that was created after all answers 409.
    pub(super) async fn call_patiently(
        &mut self,
        ctx: &TaskContext,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let mut wait = Duration::from_secs(1);
        loop {
            match self.call(method.clone(), segments, body).await {
                Err(e) if e.transient() && wait <= Duration::from_secs(4) => {
                    ctx.log.info(format!(
                        "Airflow failed to answer, asking again in {}: {e}.",
                        humantime::format_duration(wait)
                    ));
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other,
            }
        }
    }
}

/// `base` with `segments` appended as path segments (percent-encoded), keeping a
/// path prefix such as `/airflow` that a proxy may put Airflow under.
fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .expect("an http(s) URL has a path")
        .pop_if_empty()
        .extend(segments);
    url
}

async fn send(req: reqwest::RequestBuilder, method: Method, url: Url) -> Result<Value, CallError> {
    let fail = |status, what: String| CallError {
        method: method.clone(),
        url: url.clone(),
        status,
        what,
    };
    let res = req
        .send()
        .await
        .map_err(|e| fail(None, format!("failed: {e}")))?;
    let status = res.status();
    let text = res.text().await.map_err(|e| {
        fail(
            Some(status),
            format!("answered {status} and then failed: {e}"),
        )
    })?;
    if !status.is_success() {
        // Airflow's errors are JSON: a `detail` (a text, or a list of problems), and in
        // Airflow 2 a `title` when the detail is null.
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                let detail = v.get("detail").filter(|d| !d.is_null()).cloned();
                detail.or_else(|| v.get("title").cloned())
            })
            .map(|d| d.as_str().map(String::from).unwrap_or(d.to_string()))
            .unwrap_or(text);
        return Err(fail(Some(status), format!("answered {status}: {detail}")));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| fail(Some(status), format!("answered non-JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base: &str, version: u8) -> Api {
        Api::new(base_url(base).unwrap(), version, Auth::None).unwrap()
    }

    #[test]
    fn endpoints_keep_a_proxy_prefix_and_encode_each_segment() {
        assert_eq!(
            api("http://127.0.0.1:8080", 3)
                .endpoint(&["dags", "etl", "dagRuns", "setlist__a__1__t__try1"])
                .as_str(),
            "http://127.0.0.1:8080/api/v2/dags/etl/dagRuns/setlist__a__1__t__try1"
        );
        assert_eq!(
            api("https://example.com/airflow/", 2)
                .endpoint(&["dags", "a/b c"])
                .as_str(),
            "https://example.com/airflow/api/v1/dags/a%2Fb%20c"
        );
        assert_eq!(
            join(&base_url("http://h:1/x?q=1#f").unwrap(), &["auth", "token"]).as_str(),
            "http://h:1/x/auth/token"
        );
    }

    #[test]
    fn run_pages_follow_each_versions_ui() {
        assert_eq!(
            api("http://h:8080/", 3).run_page("etl", "r1").as_str(),
            "http://h:8080/dags/etl/runs/r1"
        );
        assert_eq!(
            api("http://h:8080", 2).run_page("etl", "r:1").as_str(),
            "http://h:8080/dags/etl/grid?dag_run_id=r%3A1"
        );
    }
}
