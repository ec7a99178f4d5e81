//! Airflow's stable REST API as the `airflow_dag` task calls it: the version's paths
//! (`/api/v2` for Airflow 3, `/api/v1` for Airflow 2), its auth, its errors, and which
//! failures are worth asking again.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use orchestrator::TaskContext;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

/// Airflow's base URL, checked: http(s), able to take path segments, and without a
/// user or password (the URL lands in logs and errors; the password has its own param).
pub(super) fn base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text)
        .map_err(|e| format!("is not a URL ({e}): {:?}", without_userinfo(text)))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold a user or password: use username and password_env".to_string());
    }
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(format!("must be an http:// or https:// URL, not {text:?}"));
    }
    Ok(url)
}

/// `text` with whatever sits between `://` and the last `@` of its authority masked, so
/// an error about a URL that did not parse does not print its password.
fn without_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => text.to_string(),
    }
}

/// One Airflow REST API: its version's paths, auth and page URLs.
pub(super) struct Api {
    base: Url,
    pub(super) version: u8,
    http: reqwest::Client,
    auth: Auth,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base.as_str())
            .field("version", &self.version)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// How to prove who we are to Airflow.
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
        token: Mutex<Option<String>>,
    },
    Token(String),
}

impl Auth {
    /// Airflow 3's login as `user`, not logged in yet.
    pub(super) fn login(user: String, password: String) -> Self {
        Self::Login {
            user,
            password,
            token: Mutex::new(None),
        }
    }

    fn token(&self) -> Option<String> {
        match self {
            Self::Login { token, .. } => token.lock().expect("the token lock").clone(),
            Self::Token(token) => Some(token.clone()),
            _ => None,
        }
    }
}

/// Names the user, never the password or a token.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HIDDEN: &str = "<redacted>";
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &HIDDEN)
                .finish(),
            Self::Login { user, .. } => f
                .debug_struct("Login")
                .field("user", user)
                .field("password", &HIDDEN)
                .field("token", &self.token().map(|_| HIDDEN))
                .finish(),
            Self::Token(_) => f.debug_tuple("Token").field(&HIDDEN).finish(),
        }
    }
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

    fn refused(&self) -> bool {
        matches!(
            self.status,
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        )
    }
}

/// The most task instances Airflow lists in one answer (its `maximum_page_limit`, in
/// Airflow 2 and 3 alike, unless configured otherwise).
const PAGE: usize = 100;

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

    async fn login(&self) -> Result<(), CallError> {
        let Auth::Login {
            user,
            password,
            token,
        } = &self.auth
        else {
            return Ok(());
        };
        let url = join(&self.base, &["auth", "token"]);
        let answer = send(
            self.http
                .post(url.clone())
                .json(&json!({ "username": user, "password": password })),
            Method::POST,
            url.clone(),
        )
        .await?;
        let Some(jwt) = answer["access_token"].as_str().filter(|t| !t.is_empty()) else {
            // A success status: not worth asking again, unlike no answer.
            return Err(CallError {
                method: Method::POST,
                url,
                status: Some(StatusCode::OK),
                what: "answered without an access_token: is this Airflow 3's simple auth manager? Otherwise set token_env"
                    .into(),
            });
        };
        *token.lock().expect("the token lock") = Some(jwt.to_string());
        Ok(())
    }

    /// One call to `segments` (with `query`), logged in first when Airflow 3 wants a JWT.
    pub(super) async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        if matches!(self.auth, Auth::Login { .. }) && self.auth.token().is_none() {
            self.login().await?;
        }
        let mut url = self.endpoint(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let request = || {
            let mut req = self.http.request(method.clone(), url.clone());
            req = match &self.auth {
                Auth::None => req,
                Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
                Auth::Login { .. } | Auth::Token(_) => {
                    req.bearer_auth(self.auth.token().unwrap_or_default())
                }
            };
            if let Some(b) = body {
                req = req.json(b);
            }
            req
        };
        let answer = match send(request(), method.clone(), url.clone()).await {
            // An expired or refused JWT: Airflow 3 answers 403 to a bad token, 401 to none.
            Err(e) if e.refused() && matches!(self.auth, Auth::Login { .. }) => {
                self.login().await?;
                send(request(), method, url).await
            }
            other => other,
        };
        answer.map_err(|mut e| {
            if e.refused() {
                match self.auth {
                    Auth::None => e.what.push_str(
                        " (no Airflow user was given: put one in the connection's URL (http://user@host), or set params.username)",
                    ),
                    Auth::Token(_) => e
                        .what
                        .push_str(" (with the token from token_env: has it expired, or may its user not do this?)"),
                    _ => {}
                }
            }
            e
        })
    }

    /// [`Api::call`], asked again after a transient failure (no answer, a 5xx, a 429)
    /// up to three times, 1 s, 2 s and 4 s later, each retry logged. Safe for the
    /// trigger too: a run id that was created after all answers 409.
    pub(super) async fn call_patiently(
        &self,
        ctx: &TaskContext,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_times(3);
        (|| self.call(method.clone(), segments, query, body))
            .retry(policy)
            .sleep(tokio::time::sleep)
            .when(CallError::transient)
            .notify(|e: &CallError, wait: Duration| {
                ctx.log.info(format!(
                    "Airflow failed to answer, asking again in {}: {e}.",
                    humantime::format_duration(wait)
                ));
            })
            .await
    }

    /// The task instances of a run, `task_id` (`task_id[i]` for a mapped one) to state,
    /// in `states` only when it is not empty: every page of them, each asked for
    /// patiently ([`Api::call_patiently`]). Airflow answers 50 (3) or 100 (2) to a list without a
    /// limit, so a run's failed tasks can sit on a later page.
    pub(super) async fn task_states(
        &self,
        ctx: &TaskContext,
        dag_id: &str,
        run_id: &str,
        states: &[&str],
    ) -> Result<std::collections::BTreeMap<String, String>, CallError> {
        let segments = ["dags", dag_id, "dagRuns", run_id, "taskInstances"];
        let mut tasks = std::collections::BTreeMap::new();
        let mut seen = 0;
        loop {
            let (limit, offset) = (PAGE.to_string(), seen.to_string());
            let mut query = vec![("limit", limit.as_str()), ("offset", offset.as_str())];
            query.extend(states.iter().map(|s| ("state", *s)));
            let page = self
                .call_patiently(ctx, Method::GET, &segments, &query, None)
                .await?;
            let listed = page["task_instances"].as_array().map_or(0, Vec::len);
            tasks.extend(task_instances(&page));
            seen += listed;
            let total = page["total_entries"].as_u64().unwrap_or(0) as usize;
            if listed == 0 || seen >= total {
                return Ok(tasks);
            }
        }
    }

    /// The first page of a run's task instances and how many there are in all: what a
    /// poll shows of a run's progress.
    pub(super) async fn first_task_states(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<(std::collections::BTreeMap<String, String>, usize), CallError> {
        let limit = PAGE.to_string();
        let page = self
            .call(
                Method::GET,
                &["dags", dag_id, "dagRuns", run_id, "taskInstances"],
                &[("limit", &limit)],
                None,
            )
            .await?;
        let tasks: std::collections::BTreeMap<_, _> = task_instances(&page).collect();
        let total = page["total_entries"]
            .as_u64()
            .map_or(tasks.len(), |n| n as usize);
        Ok((tasks, total))
    }
}

/// `task_id` (`task_id[i]` for each instance of a mapped task) to state, from one
/// answer of Airflow's task-instance list.
fn task_instances(page: &Value) -> impl Iterator<Item = (String, String)> + '_ {
    page["task_instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let id = t["task_id"].as_str()?;
            let id = match t["map_index"].as_i64() {
                Some(i) if i >= 0 => format!("{id}[{i}]"),
                _ => id.to_string(),
            };
            Some((id, t["state"].as_str().unwrap_or("none").to_string()))
        })
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
        let detail = error_detail(text);
        return Err(fail(Some(status), format!("answered {status}: {detail}")));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| fail(Some(status), format!("answered non-JSON: {e}")))
}

/// What an error answer says. Airflow's errors are JSON: a `detail` (a text, or a list
/// of problems), and in Airflow 2 a `title` when the detail is null. A 422's problems
/// echo what was sent as `input` (for `POST /auth/token`, the password): left out.
fn error_detail(text: String) -> String {
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            let detail = v.get("detail").filter(|d| !d.is_null()).cloned();
            detail.or_else(|| v.get("title").cloned())
        })
        .map(|mut d| {
            for problem in d.as_array_mut().into_iter().flatten() {
                if let Some(p) = problem.as_object_mut() {
                    p.remove("input");
                }
            }
            d.as_str().map(String::from).unwrap_or(d.to_string())
        })
        .unwrap_or(text)
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

    #[test]
    fn debug_output_names_the_user_but_never_a_password_or_token() {
        let login = Auth::login("admin".into(), "hunter2".into());
        if let Auth::Login { token, .. } = &login {
            *token.lock().unwrap() = Some("eyJ.secret.jwt".into());
        }
        let api = Api::new(base_url("http://h:8080").unwrap(), 3, login).unwrap();
        let basic = Auth::Basic {
            user: "admin".into(),
            password: "hunter2".into(),
        };
        let text = format!(
            "{api:?} {basic:?} {:?}",
            Auth::Token("eyJ.secret.jwt".into())
        );
        assert!(text.contains("admin"), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("secret"),
            "{text}"
        );
    }

    #[test]
    fn error_details_leave_out_what_was_sent() {
        let answer = json!({ "detail": [{
            "type": "missing", "loc": ["body", "username"], "msg": "Field required",
            "input": { "password": "hunter2" },
        }]});
        let detail = error_detail(answer.to_string());
        assert!(detail.contains("Field required"), "{detail}");
        assert!(!detail.contains("hunter2"), "{detail}");
        assert_eq!(
            error_detail(json!({ "detail": null, "title": "Not Found" }).to_string()),
            "Not Found"
        );
        assert_eq!(error_detail("<html>".into()), "<html>");
    }

    #[tokio::test]
    async fn a_login_answer_without_a_token_fails_saying_so() {
        let fake = super::super::fake::FakeAirflow::start(|_| (200, json!({ "token": "x" }))).await;
        let api = Api::new(
            base_url(&fake.url).unwrap(),
            3,
            Auth::login("admin".into(), "hunter2".into()),
        )
        .unwrap();
        let err = api
            .call(Method::GET, &["dags"], &[], None)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("auth/token answered without an access_token"),
            "{err}"
        );
        assert_eq!(fake.calls(), ["POST /auth/token"]);
    }

    #[tokio::test]
    async fn a_401_without_a_user_says_how_to_give_one() {
        let fake = super::super::fake::FakeAirflow::start(|_| {
            (401, json!({ "detail": "Not authenticated" }))
        })
        .await;
        let api = Api::new(base_url(&fake.url).unwrap(), 3, Auth::None).unwrap();
        let err = api
            .call(Method::GET, &["dags", "etl"], &[], None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("answered 401 Unauthorized: Not authenticated (no Airflow user was given: put one in the connection's URL (http://user@host), or set params.username)"),
            "{err}"
        );
    }
}
