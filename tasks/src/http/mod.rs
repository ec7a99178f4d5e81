//! `http`: one HTTP request, as Airflow's HttpOperator makes it: a method, a URL (or a
//! named `http` connection and an endpoint under it), headers, a JSON or text body,
//! the status codes that count as success and a timeout. Its output is the status and
//! the response (JSON when it is JSON, else text), bounded so the state store never
//! holds a large download. A 5xx answer or a connection error fails the attempt and
//! is retried by the task's retry policy; any other unexpected status fails it at
//! once, since a retry would get the same answer. `response_check`, a Jinja
//! expression over `response` (`response.json.state == "done"`), must hold too.
//!
//! The same request, with a poke interval and a timeout, is the `wait_http` wait.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator::{Fatal, ParamError, Task, TaskConfig, TaskContext};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connection::ConnectionKind;
use crate::settings::Settings;
use crate::wait::{Check, Poll};

/// The most bytes of a response an output keeps, unless a task asks for less.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// The params of an `http` task (and of a `wait_http` wait).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The whole URL; or leave it out and name a `connection`.
    #[serde(default)]
    pub url: Option<String>,
    /// An `http` connection: its URL is the base, its user and password the basic
    /// auth, its `token` option a bearer token.
    #[serde(default)]
    pub connection: Option<String>,
    /// The path (and query) under the connection's URL.
    #[serde(default)]
    pub endpoint: String,
    /// GET (default), POST, PUT, PATCH, DELETE or HEAD.
    #[serde(default = "get")]
    pub method: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (sets `Content-Type: application/json`).
    #[serde(default)]
    pub json: Option<Value>,
    /// A text body, sent as it is.
    #[serde(default)]
    pub body: Option<String>,
    /// The statuses that count as success (default: any 2xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// A Jinja expression over `response` (`status`, `headers`, `json` or `text`) that
    /// must be true as well.
    #[serde(default)]
    pub response_check: Option<String>,
    /// How long one request may take (default 30 s).
    #[serde(default = "thirty_seconds", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The most bytes of the response kept in the output (default and at most 1 MiB);
    /// a longer one is cut and marked `truncated`.
    #[serde(default = "max_output")]
    pub max_output_bytes: usize,
}

fn get() -> String {
    "GET".into()
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

fn max_output() -> usize {
    MAX_OUTPUT_BYTES
}

/// An answer, as the output and `response_check` see it.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `{"status": .., "headers": {..}, "json": ..}` or `.. "text": ..`, and
    /// `"truncated": true` when the body was cut.
    pub value: Value,
}

impl TaskConfig for Request {
    fn validate(&self) -> Result<(), ParamError> {
        match (&self.url, &self.connection) {
            (None, None) => {
                return Err(ParamError::at(
                    "",
                    "give a `url`, or a `connection` and an `endpoint`",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ParamError::at(
                    "url",
                    "give a `url` or a `connection`, not both",
                ));
            }
            _ => {}
        }
        if self.url.is_some() && !self.endpoint.is_empty() {
            return Err(ParamError::at(
                "endpoint",
                "an endpoint goes with a `connection`; put it in the `url`",
            ));
        }
        if self.method.parse::<Method>().is_err()
            || self.method.chars().any(|c| c.is_ascii_lowercase())
        {
            return Err(ParamError::at(
                "method",
                format!(
                    "{:?} is no HTTP method (GET, POST, PUT, PATCH, DELETE, HEAD)",
                    self.method
                ),
            ));
        }
        if self.json.is_some() && self.body.is_some() {
            return Err(ParamError::at(
                "body",
                "give a `json` body or a text `body`, not both",
            ));
        }
        if let Some(bad) = self.expect_status.iter().find(|s| !(100..600).contains(*s)) {
            return Err(ParamError::at(
                "expect_status",
                format!("{bad} is no HTTP status"),
            ));
        }
        if let Some(check) = &self.response_check {
            orchestrator::template::check_expression(check)
                .map_err(|e| ParamError::at("response_check", e))?;
        }
        if self.max_output_bytes > MAX_OUTPUT_BYTES {
            return Err(ParamError::at(
                "max_output_bytes",
                format!(
                    "must be at most {MAX_OUTPUT_BYTES}: the output is kept in the state store"
                ),
            ));
        }
        Ok(())
    }

    fn connections(&self) -> Vec<(&'static str, String)> {
        orchestrator::registry::connection_param(self.connection.as_ref())
    }
}

/// Why a request did not succeed.
pub enum Failure {
    /// No answer, or a 5xx: worth trying again.
    Transient(anyhow::Error),
    /// An answer a retry would get again (a 4xx, a failed `response_check`).
    Final(anyhow::Error),
}

impl Request {
    /// Sends the request once and judges the answer.
    pub async fn send(&self, ctx: &TaskContext) -> Result<Response, Failure> {
        let settings = Settings::of(ctx);
        let (url, auth) = self.target(&settings).map_err(Failure::Final)?;
        let client = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .build()
            .map_err(|e| Failure::Final(e.into()))?;
        let method: Method = self
            .method
            .parse()
            .map_err(|_| Failure::Final(anyhow::anyhow!("{} is no method", self.method)))?;
        let mut request = client.request(method.clone(), &url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(json) = &self.json {
            request = request.json(json);
        } else if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        request = match auth {
            Auth::None => request,
            Auth::Basic(user, password) => request.basic_auth(user, password),
            Auth::Bearer(token) => request.bearer_auth(token),
        };
        let shown = self.shown(&settings);
        ctx.log.info(format!("{method} {shown}"));
        let answer = request
            .send()
            .await
            // reqwest's error names the URL, whose query may hold a secret.
            .map_err(|e| {
                Failure::Transient(
                    anyhow::Error::new(e.without_url()).context(format!("no answer from {shown}")),
                )
            })?;
        let status = answer.status().as_u16();
        let headers: serde_json::Map<String, Value> = answer
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), Value::String(v.to_str().ok()?.to_string()))))
            .collect();
        let bytes = answer.bytes().await.map_err(|e| {
            Failure::Transient(
                anyhow::Error::new(e.without_url())
                    .context(format!("reading the answer of {shown}")),
            )
        })?;
        let mut value = json!({ "status": status, "headers": headers });
        let truncated = bytes.len() > self.max_output_bytes;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(json) if !truncated => value["json"] = json,
            _ => {
                let cut = &bytes[..bytes.len().min(self.max_output_bytes)];
                value["text"] = Value::String(String::from_utf8_lossy(cut).into_owned());
            }
        }
        if truncated {
            value["truncated"] = Value::Bool(true);
            ctx.log.info(format!(
                "The answer had {} bytes; the output keeps the first {}.",
                bytes.len(),
                self.max_output_bytes
            ));
        }
        ctx.log
            .info(format!("{shown} answered {status} ({} bytes)", bytes.len()));
        let expected = if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        };
        if !expected {
            let excerpt: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            let e = anyhow::anyhow!(
                "{shown} answered {status}, expected {}: {excerpt}",
                self.expected()
            );
            // A server error, a rate limit or a request timeout may pass; the rest will not.
            return Err(if status >= 500 || status == 429 || status == 408 {
                Failure::Transient(e)
            } else {
                Failure::Final(e)
            });
        }
        if let Some(check) = &self.response_check {
            let holds = orchestrator::template::holds(check, &json!({ "response": value }))
                .map_err(|e| Failure::Final(anyhow::anyhow!("response_check: {e}")))?;
            if !holds {
                return Err(Failure::Final(anyhow::anyhow!(
                    "response_check {check:?} is false for the answer of {shown}"
                )));
            }
        }
        Ok(Response { status, value })
    }

    fn expected(&self) -> String {
        if self.expect_status.is_empty() {
            "2xx".into()
        } else {
            self.expect_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        }
    }

    /// The URL and the credentials to send.
    fn target(&self, settings: &Settings) -> anyhow::Result<(String, Auth)> {
        if let Some(url) = &self.url {
            return Ok((url.clone(), Auth::None));
        }
        let name = self.connection.as_deref().unwrap_or_default();
        let connection = settings.connections.get(name, ConnectionKind::Http)?;
        let base = connection.http_url();
        let url = join(&base, &self.endpoint);
        let auth = if let Some(token) = connection.param("token") {
            Auth::Bearer(token)
        } else if let Some(user) = connection.login() {
            Auth::Basic(user, connection.password().map(|p| p.expose().to_string()))
        } else {
            Auth::None
        };
        Ok((url, auth))
    }

    /// Where the request goes, without secrets, for the log and messages.
    fn shown(&self, settings: &Settings) -> String {
        match (&self.url, &self.connection) {
            (Some(url), _) => match url::Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        u.set_password(Some("***")).ok();
                    }
                    u.set_query(None);
                    u.to_string()
                }
                Err(_) => url.clone(),
            },
            (None, Some(name)) => match settings.connections.named(name) {
                Ok(c) => join(
                    &c.shown(),
                    self.endpoint.split('?').next().unwrap_or_default(),
                ),
                Err(_) => format!("connection `{name}`"),
            },
            (None, None) => "nowhere".into(),
        }
    }
}

enum Auth {
    None,
    Basic(String, Option<String>),
    Bearer(String),
}

/// `endpoint` (a path, maybe with a query) under `base`'s path, with one slash
/// between them and both queries kept; a `token` in `base`'s query is the bearer
/// token and is not sent in the URL.
fn join(base: &str, endpoint: &str) -> String {
    let Ok(mut url) = url::Url::parse(base) else {
        return format!(
            "{}/{}",
            base.trim_end_matches('/'),
            endpoint.trim_start_matches('/')
        );
    };
    let (path, query) = endpoint.split_once('?').unwrap_or((endpoint, ""));
    if !path.is_empty() {
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
    }
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.extend(
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned())),
    );
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[async_trait]
impl Task for Request {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        match self.send(ctx).await {
            Ok(response) => Ok(response.value),
            Err(Failure::Transient(e)) => Err(e),
            Err(Failure::Final(e)) => Err(Fatal(format!("{e:#}")).into()),
        }
    }
}

/// `wait_http`: the request until its status is expected and its `response_check`
/// holds; no answer, or any other answer, is a poke to try again.
#[async_trait]
impl Check for Request {
    async fn check(&self, ctx: &TaskContext) -> anyhow::Result<Poll> {
        Ok(match self.send(ctx).await {
            Ok(response) => Poll::Met(response.value),
            Err(Failure::Transient(e) | Failure::Final(e)) => Poll::NotYet(format!("{e:#}")),
        })
    }

    fn validate(&self) -> Result<(), ParamError> {
        TaskConfig::validate(self)
    }

    fn connections(&self) -> Vec<(&'static str, String)> {
        TaskConfig::connections(self)
    }
}

#[cfg(test)]
mod tests {
    use super::join;

    #[test]
    fn an_endpoint_joins_its_base_with_one_slash() {
        assert_eq!(join("http://h/api/", "/v1/x"), "http://h/api/v1/x");
        assert_eq!(join("http://h", "v1"), "http://h/v1");
        assert_eq!(join("http://h/", ""), "http://h/");
        // The base's query stays a query; its token goes in the header instead.
        assert_eq!(
            join("https://h/api?token=x&region=eu", "/v1/jobs?state=done"),
            "https://h/api/v1/jobs?region=eu&state=done"
        );
    }
}
