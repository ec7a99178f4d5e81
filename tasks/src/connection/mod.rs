//! Named connections: where a warehouse, an object store, an HTTP service or a broker
//! is, and the secrets to reach it, defined once in the configuration and referred to
//! by name from DAG files and settings (`connection = "snowflake"`), as Airflow's
//! connections are.
//!
//! A connection is a URL whose scheme says its kind (`postgres://`, `snowflake://`,
//! `http(s)://`, `s3://`, `kafka://`, `smtp(s)://`, `webhook+https://`), a password or
//! private key that may come from the URL, the file, an environment variable or a file
//! path, and `extra` options. The configuration reads the secrets once, at start
//! ([`ConnectionSettings::resolve`]); a [`Connection`] never prints them: its URL is
//! kept without the password, and the secrets are [`Secret`]s.

mod check;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, bail};
use orchestrator::{DbUrl, Secret};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use url::Url;

pub use check::check;

/// What a connection reaches, which decides the task kinds and settings that take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    /// A PostgreSQL database (`postgres://user@host:5432/db`).
    Postgres,
    /// A Snowflake account (`snowflake://USER@ACCOUNT/DATABASE?warehouse=&role=`).
    Snowflake,
    /// An HTTP service, Airflow's API among them (`https://user@host/base`).
    Http,
    /// An S3-compatible object store (`s3://ACCESS_KEY@host:port?region=&secure=false`;
    /// the host `aws` (or none): AWS itself, `s3://ACCESS_KEY@aws?region=eu-west-1`).
    S3,
    /// A Kafka-protocol broker (`kafka://host:9092,host2:9092`).
    Kafka,
    /// A mail server (`smtp://user@host:587`, `smtps://` for TLS from the start).
    Smtp,
    /// A webhook that takes JSON (Slack-compatible): `webhook+https://hooks.example/...`.
    Webhook,
}

impl ConnectionKind {
    /// Every kind, for messages that list them.
    pub const ALL: [ConnectionKind; 7] = [
        Self::Postgres,
        Self::Snowflake,
        Self::Http,
        Self::S3,
        Self::Kafka,
        Self::Smtp,
        Self::Webhook,
    ];

    /// The kind a URL scheme names.
    pub fn from_scheme(scheme: &str) -> Option<Self> {
        Some(match scheme {
            "postgres" | "postgresql" => Self::Postgres,
            "snowflake" => Self::Snowflake,
            "http" | "https" => Self::Http,
            "s3" => Self::S3,
            "kafka" => Self::Kafka,
            "smtp" | "smtps" => Self::Smtp,
            "webhook+http" | "webhook+https" => Self::Webhook,
            _ => return None,
        })
    }

    /// The name the configuration writes it with.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Snowflake => "snowflake",
            Self::Http => "http",
            Self::S3 => "s3",
            Self::Kafka => "kafka",
            Self::Smtp => "smtp",
            Self::Webhook => "webhook",
        }
    }
}

impl fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A connection as the configuration writes it (`[connections.NAME]` in setlist.toml,
/// or `SETLIST_CONN_NAME=URL`), before its secrets are read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    /// The kind; default: the one the URL's scheme names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ConnectionKind>,
    /// Where it is; a password in it is a secret like `password`.
    pub url: DbUrl,
    /// The password itself (better: `password_env` or `password_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The environment variable that holds the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// The file that holds the password (a mounted secret); one trailing newline is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The file that holds a private key in PEM form (Snowflake's key-pair auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    /// The environment variable that holds that private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_env: Option<String>,
    /// More options, by name (an S3 session token, a Snowflake stage); treated as secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Secret>,
}

/// A problem with one field of one connection, for the configuration's errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, such as `password_file`.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn field_error(field: &'static str, problem: impl Into<String>) -> FieldError {
    FieldError {
        field,
        problem: problem.into(),
    }
}

impl ConnectionSettings {
    /// A connection from a URL alone (`SETLIST_CONN_NAME`).
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            kind: None,
            url: DbUrl::new(url),
            password: None,
            password_env: None,
            password_file: None,
            private_key_file: None,
            private_key_env: None,
            extra: BTreeMap::new(),
        }
    }

    /// Reads the secrets (from `var`, the process's environment at start, or from files)
    /// and checks the URL and the kind: the connection named `name`, or what is wrong
    /// with which field.
    pub fn resolve(
        &self,
        name: &str,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Connection, FieldError> {
        // A broker list (kafka://a:9092,b:9092) is no URL; its first host stands in.
        let (text, brokers) = match split_brokers(self.url.expose()) {
            Some((first, all)) => (first, Some(all)),
            None => (self.url.expose().to_string(), None),
        };
        let mut url = Url::parse(&text)
            .map_err(|e| field_error("url", format!("is not a URL ({e}): {}", self.url)))?;
        let kind = match (self.kind, ConnectionKind::from_scheme(url.scheme())) {
            (Some(kind), _) | (None, Some(kind)) => kind,
            (None, None) => {
                return Err(field_error(
                    "url",
                    format!(
                        "its scheme {}:// names no kind; set `kind` ({}) or use one of postgres, snowflake, http(s), s3, kafka, smtp(s), webhook+https",
                        url.scheme(),
                        ConnectionKind::ALL.map(|k| k.as_str()).join(", ")
                    ),
                ));
            }
        };
        let in_url = url.password().map(decode);
        url.set_password(None).ok();
        let read_file = |field: &'static str, path: &PathBuf| {
            std::fs::read_to_string(path)
                .map(|s| s.strip_suffix('\n').unwrap_or(&s).to_string())
                .map_err(|e| field_error(field, format!("cannot read {}: {e}", path.display())))
        };
        let read_var = |field: &'static str, name: &str| {
            var(name).ok_or_else(|| field_error(field, format!("names {name}, which is not set")))
        };
        let sources = [
            in_url.is_some(),
            self.password.is_some(),
            self.password_env.is_some(),
            self.password_file.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(field_error(
                "password",
                "comes from more than one place; give one of the URL's password, password, password_env, password_file",
            ));
        }
        let password = match (&self.password, &self.password_env, &self.password_file) {
            (Some(p), _, _) => Some(p.clone()),
            (_, Some(v), _) => Some(Secret::new(read_var("password_env", v)?)),
            (_, _, Some(f)) => Some(Secret::new(read_file("password_file", f)?)),
            _ => in_url.map(Secret::new),
        };
        let private_key = match (&self.private_key_file, &self.private_key_env) {
            (Some(_), Some(_)) => {
                return Err(field_error(
                    "private_key_file",
                    "and private_key_env are both set; give one",
                ));
            }
            (Some(f), None) => Some(Secret::new(read_file("private_key_file", f)?)),
            (None, Some(v)) => Some(Secret::new(read_var("private_key_env", v)?)),
            (None, None) => None,
        };
        let connection = Connection {
            name: name.to_string(),
            kind,
            url,
            brokers,
            password,
            private_key,
            extra: self.extra.clone(),
        };
        connection.check_shape()?;
        Ok(connection)
    }
}

/// A connection ready to use: its kind, its URL (without the password) and its secrets.
#[derive(Clone)]
pub struct Connection {
    /// The name DAG files and settings refer to it by.
    pub name: String,
    /// What it reaches.
    pub kind: ConnectionKind,
    url: Url,
    /// A Kafka connection's whole broker list (its URL holds the first).
    brokers: Option<String>,
    password: Option<Secret>,
    private_key: Option<Secret>,
    extra: BTreeMap<String, Secret>,
}

/// `kafka://[user@]a:9092,b:9092[/...][?...]` as a URL with the first broker only, and
/// the whole list; `None` for any other URL.
fn split_brokers(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix("kafka://")?;
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let first = hosts.split(',').next().unwrap_or_default();
    Some((
        format!("kafka://{userinfo}{first}{tail}"),
        hosts.to_string(),
    ))
}

/// Whether a query parameter's name says its value is a secret.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "key",
        "signature",
        "sig",
        "auth",
    ]
    .iter()
    .any(|s| name.contains(s))
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url.as_str())
            .field("password", &self.password)
            .field("private_key", &self.private_key)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Connection {
    /// The URL without its password, for messages, pages and `connections list`.
    pub fn shown(&self) -> String {
        let mut url = self.url.clone();
        if self.password.is_some() {
            url.set_password(Some("***")).ok();
        }
        if self.kind == ConnectionKind::Webhook {
            // A webhook's path is its secret (Slack's /services/T/B/XXXX).
            url.set_path("/***");
            url.set_query(None);
        } else if url.query_pairs().any(|(k, _)| is_secret_param(&k)) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_secret_param(&k) {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        let mut text = url.to_string();
        if let Some(all) = &self.brokers {
            // The authority's hosts, after its user-info, become the whole list.
            let start = text.find("://").map_or(0, |i| i + 3);
            let end = text[start..]
                .find(['/', '?'])
                .map_or(text.len(), |i| start + i);
            let hosts_at = text[start..end].rfind('@').map_or(start, |i| start + i + 1);
            text.replace_range(hosts_at..end, all);
        }
        text
    }

    /// The user name in the URL, decoded; `None` when it has none.
    pub fn login(&self) -> Option<String> {
        Some(decode(self.url.username())).filter(|u| !u.is_empty())
    }

    /// The password, wherever it came from.
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// The private key (PEM), wherever it came from.
    pub fn private_key(&self) -> Option<&Secret> {
        self.private_key.as_ref()
    }

    /// The URL's host; for Snowflake, the account.
    pub fn host(&self) -> Option<&str> {
        self.url.host_str().filter(|h| !h.is_empty())
    }

    /// The URL's scheme (`smtps`, `https`, ...), which says how to reach it.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// The URL's port, when it names one.
    pub fn port(&self) -> Option<u16> {
        self.url.port()
    }

    /// A query parameter of the URL, else an `extra` option, by name.
    pub fn param(&self, key: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .or_else(|| self.extra.get(key).map(|s| s.expose().to_string()))
            .filter(|v| !v.is_empty())
    }

    /// The first segment of the URL's path, decoded (a database, a bucket).
    pub fn path_segment(&self) -> Option<String> {
        self.url
            .path_segments()
            .and_then(|mut s| s.next())
            .map(decode)
            .filter(|s| !s.is_empty())
    }

    /// The `extra` options, for kinds that hand them on (S3's config keys).
    pub fn extra(&self) -> impl Iterator<Item = (&str, &str)> {
        self.extra.iter().map(|(k, v)| (k.as_str(), v.expose()))
    }

    /// A PostgreSQL connection's URL with its password, to connect with.
    pub fn postgres_url(&self) -> DbUrl {
        let mut url = self.url.clone();
        if let Some(p) = &self.password {
            url.set_password(Some(p.expose())).ok();
        }
        DbUrl::new(url.to_string())
    }

    /// An HTTP or webhook connection's URL without user, password or the `webhook+`
    /// prefix: where requests go.
    pub fn http_url(&self) -> String {
        let mut url = self.url.clone();
        url.set_username("").ok();
        let text = url.to_string();
        text.strip_prefix("webhook+").unwrap_or(&text).to_string()
    }

    /// A Kafka connection's bootstrap servers, `host:port,host:port`.
    pub fn brokers(&self) -> String {
        match &self.brokers {
            Some(all) => all.clone(),
            None => self.host().unwrap_or_default().to_string(),
        }
    }

    /// An S3 connection as object_store's options: the endpoint (when the URL has a
    /// host), the region (`region`, default us-east-1), the access key (the URL's user)
    /// and secret (the password), and every `extra` option as it is.
    pub fn s3_options(&self) -> Vec<(String, String)> {
        let mut options = Vec::new();
        if let Some(host) = self.host().filter(|h| *h != "aws") {
            let secure = self.param("secure").is_none_or(|s| s != "false");
            let scheme = if secure { "https" } else { "http" };
            let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
            options.push(("endpoint".into(), format!("{scheme}://{host}{port}")));
            options.push(("allow_http".into(), (!secure).to_string()));
        }
        options.push((
            "region".into(),
            self.param("region").unwrap_or_else(|| "us-east-1".into()),
        ));
        if let Some(user) = self.login() {
            options.push(("access_key_id".into(), user));
        }
        if let Some(p) = &self.password {
            options.push(("secret_access_key".into(), p.expose().to_string()));
        }
        for (k, v) in self.extra() {
            if k != "region" && k != "secure" {
                options.push((k.to_string(), v.to_string()));
            }
        }
        options
    }

    /// What each kind needs of its URL, checked when the configuration loads.
    fn check_shape(&self) -> Result<(), FieldError> {
        let need_host = |what: &str| {
            if self.host().is_none() {
                Err(field_error(
                    "url",
                    format!("names no {what}: {}", self.shown()),
                ))
            } else {
                Ok(())
            }
        };
        match self.kind {
            ConnectionKind::Postgres | ConnectionKind::Http | ConnectionKind::Smtp => {
                need_host("host")
            }
            ConnectionKind::Webhook => need_host("host"),
            ConnectionKind::Snowflake => {
                need_host("account")?;
                if self.login().is_none() {
                    return Err(field_error(
                        "url",
                        format!(
                            "names no user (snowflake://USER@ACCOUNT/DATABASE): {}",
                            self.shown()
                        ),
                    ));
                }
                if self.password.is_none() && self.private_key.is_none() {
                    return Err(field_error(
                        "password",
                        "a Snowflake connection needs a password or a private key (private_key_file)",
                    ));
                }
                Ok(())
            }
            ConnectionKind::Kafka if self.brokers().is_empty() => Err(field_error(
                "url",
                format!("names no broker (kafka://host:9092): {}", self.shown()),
            )),
            ConnectionKind::Kafka | ConnectionKind::S3 => Ok(()),
        }
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Every named connection of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Connections(BTreeMap<String, Connection>);

impl Connections {
    /// The connections, by name.
    pub fn new(connections: impl IntoIterator<Item = Connection>) -> Self {
        Self(
            connections
                .into_iter()
                .map(|c| (c.name.clone(), c))
                .collect(),
        )
    }

    /// Whether a connection is named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Every connection, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Connection> {
        self.0.values()
    }

    /// The connection `name`, of whatever kind; the error names what there is.
    pub fn named(&self, name: &str) -> anyhow::Result<&Connection> {
        self.0.get(name).with_context(|| {
            format!(
                "no connection named `{name}` (defined: {}); add [connections.{name}] to setlist.toml or set SETLIST_CONN_{}",
                self.names(),
                name.to_uppercase()
            )
        })
    }

    /// The connection `name`, which must be of `kind`; the error names what there is.
    pub fn get(&self, name: &str, kind: ConnectionKind) -> anyhow::Result<&Connection> {
        let connection = self.named(name)?;
        if connection.kind != kind {
            bail!(
                "connection `{name}` is a {} connection, not the {kind} connection this needs",
                connection.kind
            );
        }
        Ok(connection)
    }

    /// The connection `name` of `kind` if there is one by that name.
    pub fn find(&self, name: &str, kind: ConnectionKind) -> anyhow::Result<Option<&Connection>> {
        match self.0.contains_key(name) {
            true => self.get(name, kind).map(Some),
            false => Ok(None),
        }
    }

    /// The names, for messages.
    pub fn names(&self) -> String {
        if self.0.is_empty() {
            "none".into()
        } else {
            self.0.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(s: &ConnectionSettings) -> Result<Connection, FieldError> {
        s.resolve("c", &|name| (name == "PW").then(|| "from-env".to_string()))
    }

    #[test]
    fn the_scheme_names_the_kind_and_a_password_in_the_url_is_a_secret() {
        let c = resolve(&ConnectionSettings::from_url(
            "postgres://me:p%40ss@db:5432/wh",
        ))
        .unwrap();
        assert_eq!(c.kind, ConnectionKind::Postgres);
        assert_eq!(c.shown(), "postgres://me:***@db:5432/wh");
        assert_eq!(c.password().unwrap().expose(), "p@ss");
        assert_eq!(c.postgres_url().expose(), "postgres://me:p%40ss@db:5432/wh");
        assert!(!format!("{c:?}").contains("p@ss"));
    }

    #[test]
    fn secrets_come_from_one_place_each() {
        let mut s = ConnectionSettings::from_url("https://admin@airflow:8080");
        s.password_env = Some("PW".into());
        assert_eq!(
            resolve(&s).unwrap().password().unwrap().expose(),
            "from-env"
        );
        s.password_env = Some("MISSING".into());
        assert_eq!(
            resolve(&s).unwrap_err(),
            field_error("password_env", "names MISSING, which is not set")
        );
        s.password = Some(Secret::new("x"));
        assert_eq!(resolve(&s).unwrap_err().field, "password");
        let s = ConnectionSettings {
            password_file: Some("/no/such/file".into()),
            ..ConnectionSettings::from_url("https://h")
        };
        let e = resolve(&s).unwrap_err();
        assert_eq!(e.field, "password_file");
        assert!(e.problem.starts_with("cannot read /no/such/file:"), "{e:?}");
    }

    #[test]
    fn each_kind_checks_its_url() {
        let e = resolve(&ConnectionSettings::from_url("ftp://h")).unwrap_err();
        assert!(
            e.problem.starts_with("its scheme ftp:// names no kind"),
            "{e:?}"
        );
        let e = resolve(&ConnectionSettings::from_url("snowflake://acct/DB")).unwrap_err();
        assert!(e.problem.starts_with("names no user"), "{e:?}");
        let e = resolve(&ConnectionSettings::from_url("snowflake://ME@acct/DB")).unwrap_err();
        assert_eq!(e.field, "password");
        let e = resolve(&ConnectionSettings::from_url("not a url")).unwrap_err();
        assert_eq!(e.field, "url");
    }

    #[test]
    fn s3_connections_become_object_store_options() {
        let c = resolve(&ConnectionSettings::from_url(
            "s3://KEY:SECRET@127.0.0.1:18333?secure=false&region=eu-west-1",
        ))
        .unwrap();
        let o: BTreeMap<String, String> = c.s3_options().into_iter().collect();
        assert_eq!(o["endpoint"], "http://127.0.0.1:18333");
        assert_eq!(o["allow_http"], "true");
        assert_eq!(o["region"], "eu-west-1");
        assert_eq!(o["access_key_id"], "KEY");
        assert_eq!(o["secret_access_key"], "SECRET");
    }

    #[test]
    fn secrets_in_paths_and_parameters_never_show() {
        let w = resolve(&ConnectionSettings::from_url(
            "webhook+https://hooks.example/services/T/B/XXXX",
        ))
        .unwrap();
        assert_eq!(w.shown(), "webhook+https://hooks.example/***");
        let p = resolve(&ConnectionSettings::from_url(
            "postgres://me@db/wh?sslmode=require&password=hunter2",
        ))
        .unwrap();
        assert_eq!(
            p.shown(),
            "postgres://me@db/wh?sslmode=require&password=***"
        );
        let k = resolve(&ConnectionSettings::from_url("kafka://kafka,kafka2?x=1")).unwrap();
        assert_eq!(k.shown(), "kafka://kafka,kafka2?x=1");
        let k = resolve(&ConnectionSettings::from_url("kafka://u:p%40ss@a:1,b:2/x")).unwrap();
        assert_eq!(k.brokers(), "a:1,b:2");
        assert_eq!(k.shown(), "kafka://u:***@a:1,b:2/x");
        let aws = resolve(&ConnectionSettings::from_url(
            "s3://KEY:SECRET@aws?region=eu-west-1",
        ))
        .unwrap();
        let o: BTreeMap<String, String> = aws.s3_options().into_iter().collect();
        assert!(!o.contains_key("endpoint"), "{o:?}");
        assert_eq!(o["access_key_id"], "KEY");
    }

    #[test]
    fn kafka_webhook_and_lookups() {
        let k = resolve(&ConnectionSettings::from_url("kafka://a:9092,b:9092")).unwrap();
        assert_eq!(k.brokers(), "a:9092,b:9092");
        assert_eq!(k.shown(), "kafka://a:9092,b:9092");
        let w = resolve(&ConnectionSettings::from_url(
            "webhook+https://hooks.example/T/B",
        ))
        .unwrap();
        assert_eq!(w.kind, ConnectionKind::Webhook);
        assert_eq!(w.http_url(), "https://hooks.example/T/B");
        let all = Connections::new([k]);
        assert!(all.get("c", ConnectionKind::Kafka).is_ok());
        let e = all.get("c", ConnectionKind::Http).unwrap_err().to_string();
        assert_eq!(
            e,
            "connection `c` is a kafka connection, not the http connection this needs"
        );
        let e = all
            .get("nope", ConnectionKind::Kafka)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("no connection named `nope` (defined: c)"),
            "{e}"
        );
    }
}
