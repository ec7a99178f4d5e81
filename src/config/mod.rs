//! Setlist's one configuration. Read once at start, in layers, each over the last:
//! built-in defaults, then `setlist.toml` in the working folder (or `--config FILE`),
//! then `SETLIST_*` environment variables, then command-line flags. It is validated
//! then, with errors that name the key and where its value came from, and handed down:
//! nothing below the [`crate::App`] reads the environment.
//!
//! Every setting has one name: the key in the file (`kafka.topic`) and the variable
//! `SETLIST_` + the key in capitals with `_` for `.` (`SETLIST_KAFKA_TOPIC`). A few
//! older variable names still work ([`ENV_ALIASES`]). Named connections are
//! `[connections.NAME]` tables or `SETLIST_CONN_NAME=URL` variables; their secrets are
//! read here, once ([`tasks::connection`]).

mod env;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::Serialized;
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use orchestrator::{DbUrl, Secret};
use serde::{Deserialize, Serialize};
use tasks::connection::{ConnectionSettings, Connections};
use tasks::kafka::KafkaConfig;
use tasks::settings::{DbtSettings, StoreSettings, WarehouseSettings};

pub use env::ENV_ALIASES;
use env::{Layer, environment, older_connections};

/// The file read from the working folder when no `--config` is given.
pub const DEFAULT_FILE: &str = "setlist.toml";

/// Everything Setlist can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The state store (PostgreSQL).
    pub database_url: DbUrl,
    /// The folder of TOML DAG files.
    pub dags_dir: PathBuf,
    /// The broker of play events.
    pub kafka: KafkaConfig,
    /// The lake the lander writes and the loader reads.
    pub store: StoreSettings,
    /// The warehouse of bronze, silver and gold.
    pub warehouse: WarehouseSettings,
    /// How dbt runs.
    pub dbt: DbtSettings,
    /// The scheduler.
    pub scheduler: SchedulerSettings,
    /// Workers.
    pub worker: WorkerSettings,
    /// The web UI and REST API.
    pub web: WebSettings,
    /// The simulator `standalone` runs beside the engine.
    pub simulate: SimulateSettings,
    /// The lander `standalone` runs beside the engine.
    pub land: LandSettings,
    /// Named connections (warehouses, object stores, HTTP services, brokers), by name.
    pub connections: BTreeMap<String, ConnectionSettings>,
    /// Pools by name, each with its slots: `[pools] warehouse = 2`.
    pub pools: BTreeMap<String, u32>,
    /// The same connections with their secrets read, filled in by [`load`].
    #[serde(skip)]
    pub resolved: Connections,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DbUrl::new("postgres://postgres@127.0.0.1:5432/setlist"),
            dags_dir: "dags".into(),
            kafka: KafkaConfig::default(),
            store: StoreSettings::default(),
            warehouse: WarehouseSettings::default(),
            dbt: DbtSettings::default(),
            scheduler: SchedulerSettings::default(),
            worker: WorkerSettings::default(),
            web: WebSettings::default(),
            simulate: SimulateSettings::default(),
            land: LandSettings::default(),
            connections: BTreeMap::new(),
            pools: BTreeMap::new(),
            resolved: Connections::default(),
        }
    }
}

/// The scheduler section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// A worker silent for this long is given up and its work retried.
    #[serde(with = "humantime_serde")]
    pub worker_timeout: Duration,
    /// How often to reap lost workers and sweep finished runs.
    #[serde(with = "humantime_serde")]
    pub housekeeping_interval: Duration,
    /// How often to parse the DAG folder again even when no file seems changed (an
    /// added, changed or removed file is noticed at the next housekeeping).
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            worker_timeout: Duration::from_secs(30),
            housekeeping_interval: Duration::from_secs(5),
            reload_interval: Duration::from_secs(30),
        }
    }
}

/// The worker section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Task instances one worker runs at once.
    pub concurrency: usize,
    /// How often a worker says it is alive.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Workers in one `standalone` process.
    pub count: usize,
    /// The queues workers claim from.
    pub queues: Vec<String>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 8,
            heartbeat_interval: Duration::from_secs(5),
            count: 1,
            queues: vec!["default".into()],
        }
    }
}

/// The web section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// Whether `standalone` serves the web (`setlist web` always does).
    pub enabled: bool,
    /// Where the web server listens (127.0.0.1 unless you say otherwise).
    pub bind: SocketAddr,
    /// Serve reads (GET) without the API token.
    pub public_reads: bool,
    /// The bearer token of the API; absent: one made once in `.setlist/api-token`.
    pub api_token: Option<Secret>,
    /// Where people open the pages (`https://setlist.example.com`), for the links in
    /// alerts; absent: `http://` and `bind`.
    pub public_url: Option<String>,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_reads: false,
            api_token: None,
            public_url: None,
        }
    }
}

/// The simulate section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulateSettings {
    /// Events per second `standalone` simulates (0: no simulator).
    pub rate: f64,
}

/// The land section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LandSettings {
    /// Whether `standalone` runs the lander.
    pub enabled: bool,
    /// A partition's open batch is written once it is this old.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for LandSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            max_age: Duration::from_secs(5),
        }
    }
}

/// Every key that a variable can set, as `section.key`.
fn keys() -> Vec<String> {
    let mut keys = Vec::new();
    flatten(
        "",
        &serde_json::to_value(Config::default()).expect("serialises"),
        &mut keys,
    );
    // An absent optional key serialises as null, so it is listed too. Connections
    // have names of their own, and variables of their own (SETLIST_CONN_NAME).
    keys.retain(|k| k != "connections");
    keys
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() && prefix != "kafka.properties" => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// The variable that sets `key`.
pub fn env_name(key: &str) -> String {
    format!("SETLIST_{}", key.replace('.', "_").to_uppercase())
}

/// A TOML file as a figment provider, read with the workspace's toml parser so that
/// a syntax error says line and column.
struct TomlFile {
    path: PathBuf,
    table: toml::Table,
}

impl Provider for TomlFile {
    fn metadata(&self) -> Metadata {
        Metadata::named("file").source(figment::Source::File(self.path.clone()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(&self.table).data()
    }
}

/// Settings given as command-line flags, each at its key.
#[derive(Debug, Default)]
pub struct Flags(Vec<(&'static str, figment::value::Value)>);

impl Flags {
    /// No flags.
    pub fn new() -> Self {
        Self::default()
    }

    /// `key` is `value` when the flag was given.
    pub fn set<T: Serialize>(mut self, key: &'static str, value: Option<T>) -> Self {
        if let Some(v) = value {
            let v = figment::value::Value::serialize(v).expect("a flag's value serialises");
            self.0.push((key, v));
        }
        self
    }
}

/// Where the configuration was read from, for errors and `config show`.
pub struct Loaded {
    /// The settings.
    pub config: Config,
    figment: Figment,
}

impl Loaded {
    /// Where the value at `key` came from: `default`, `file setlist.toml`,
    /// `environment variable SETLIST_CONN_AIRFLOW`, ...
    pub fn origin_of(&self, key: &str) -> String {
        self.figment
            .find_metadata(key)
            .map(origin)
            .unwrap_or_else(|| "default".into())
    }

    /// Each key with its value (secrets redacted) and where the value came from.
    pub fn show(&self) -> String {
        let value = serde_json::to_value(&self.config).expect("serialises");
        let mut out = String::new();
        for key in keys() {
            let v = key
                .split('.')
                .try_fold(&value, |v, part| v.get(part))
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            let shown = match &v {
                serde_json::Value::Null => "(unset)".to_string(),
                other => other.to_string(),
            };
            let source = self
                .figment
                .find_metadata(&key)
                .map(origin)
                .unwrap_or_else(|| "default".into());
            out.push_str(&format!(
                "{key} = {shown}    # {source}; variable {}\n",
                env_name(&key)
            ));
        }
        for connection in self.config.resolved.iter() {
            let key = format!("connections.{}", connection.name);
            let source = self
                .figment
                .find_metadata(&format!("{key}.url"))
                .map(origin)
                .unwrap_or_else(|| "default".into());
            out.push_str(&format!(
                "{key} = {}    # {} connection; {source}; variable SETLIST_CONN_{}\n",
                serde_json::Value::from(connection.shown()),
                connection.kind,
                connection.name.to_uppercase()
            ));
        }
        for (alias, key) in ENV_ALIASES {
            out.push_str(&format!("# {alias} also sets {key}\n"));
        }
        out
    }
}

/// Reads the configuration: defaults, then `file` (or `setlist.toml` if it exists),
/// then the environment `vars`, then `flags`. `vars` is the process's environment in
/// the binary and whatever a test says in tests.
pub fn load(
    file: Option<&Path>,
    vars: &[(String, String)],
    flags: Flags,
) -> anyhow::Result<Loaded> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    let path = match file {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.exists()),
    };
    if let Some(path) = path {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read the config file {}: {e}", path.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        figment = figment.merge(TomlFile { path, table });
    }
    for layer in environment(vars)? {
        figment = figment.merge(layer);
    }
    let mut from_older = Vec::new();
    for older in older_connections(vars) {
        if figment
            .find_value(&format!("connections.{}", older.name))
            .is_err()
        {
            from_older.push(older.name);
            for layer in older.layers {
                figment = figment.merge(layer);
            }
        }
    }
    for (key, value) in flags.0 {
        let flag = format!(
            "--{}",
            key.rsplit('.').next().unwrap_or(key).replace('_', "-")
        );
        figment = figment.merge(Layer::new(key, value, "flag".into(), flag));
    }
    let mut config: Config = figment.extract().map_err(|e| {
        let messages: Vec<String> = e.into_iter().map(|e| describe(&e)).collect();
        anyhow::anyhow!("invalid configuration:\n  {}", messages.join("\n  "))
    })?;
    config.resolved = resolve_connections(&config, vars, &figment, &from_older)?;
    validate(&config, &figment)?;
    Ok(Loaded { config, figment })
}

/// Reads every connection's secrets (from `vars` and files) and checks its URL; each
/// problem names the connection's field and where it was set. A connection that only
/// the older variables describe (`from_older`) and that does not resolve is left out
/// with a warning instead: those variables may be set for another tool (dbt, the aws
/// CLI), and the connection fails only what uses it.
fn resolve_connections(
    config: &Config,
    vars: &[(String, String)],
    figment: &Figment,
    from_older: &[&str],
) -> anyhow::Result<Connections> {
    let var = |name: &str| env::var(vars, name);
    let mut resolved = Vec::new();
    let mut problems = Vec::new();
    for (name, settings) in &config.connections {
        match settings.resolve(name, &var) {
            Ok(c) => resolved.push(c),
            Err(e) if from_older.contains(&name.as_str()) => {
                tracing::warn!(
                    connection = %name,
                    problem = %format!("{}: {}", e.field, e.problem),
                    "The older variables describe a connection that does not work; it is left out."
                );
            }
            Err(e) => {
                let key = format!("connections.{name}.{}", e.field);
                let from = figment
                    .find_metadata(&key)
                    .or_else(|| figment.find_metadata(&format!("connections.{name}.url")))
                    .map(origin)
                    .unwrap_or_else(|| "default".into());
                problems.push(format!("{key}: {} (from {from})", e.problem));
            }
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    Ok(Connections::new(resolved))
}

/// Where a layer came from: `default`, `file setlist.toml`, `environment variable
/// SETLIST_KAFKA_TOPIC`, `flag --topic`.
fn origin(m: &Metadata) -> String {
    match &m.source {
        Some(figment::Source::File(path)) => format!("{} {}", m.name, path.display()),
        Some(figment::Source::Custom(what)) => format!("{} {what}", m.name),
        Some(figment::Source::Code(_)) => "default".into(),
        Some(other) => format!("{} {other}", m.name),
        None => m.name.to_string(),
    }
}

/// One figment error as a sentence: what is wrong, at which key, from where.
fn describe(e: &figment::Error) -> String {
    let key = e.path.join(".");
    let from = match &e.metadata {
        Some(m) => format!(" (from {})", origin(m)),
        None => String::new(),
    };
    if key.is_empty() {
        format!("{}{from}", e.kind)
    } else {
        format!("{key}: {}{from}", e.kind)
    }
}

/// Checks that serde cannot express, each problem with its key and, from
/// `figment`, where the value came from.
fn validate(config: &Config, figment: &Figment) -> anyhow::Result<()> {
    let mut problems: Vec<(&str, String)> = Vec::new();
    if config.worker.concurrency == 0 {
        problems.push(("worker.concurrency", "must be at least 1".into()));
    }
    if config.worker.count == 0 {
        problems.push(("worker.count", "must be at least 1".into()));
    }
    if config.simulate.rate < 0.0 || config.simulate.rate.is_nan() {
        let rate = config.simulate.rate;
        problems.push((
            "simulate.rate",
            format!("must be 0 (off) or more, not {rate}"),
        ));
    }
    for (key, url) in [
        ("database_url", Some(&config.database_url)),
        ("warehouse.url", config.warehouse.url.as_ref()),
    ] {
        if let Some(url) = url
            && !(url.expose().starts_with("postgres://")
                || url.expose().starts_with("postgresql://"))
        {
            problems.push((key, format!("must be a postgres:// URL, not {url}")));
        }
    }
    if config.kafka.brokers.trim().is_empty() {
        problems.push(("kafka.brokers", "must name at least one host:port".into()));
    }
    if config.kafka.topic.trim().is_empty() {
        problems.push(("kafka.topic", "must not be empty".into()));
    }
    use tasks::connection::ConnectionKind;
    if let Some(name) = &config.store.connection
        && let Err(e) = config.resolved.get(name, ConnectionKind::S3)
    {
        problems.push(("store.connection", e.to_string()));
    }
    if config.warehouse.kind == tasks::settings::WarehouseKind::Snowflake
        || config.warehouse.connection.is_some()
    {
        let name = config
            .warehouse
            .connection
            .as_deref()
            .unwrap_or("snowflake");
        if let Err(e) = config.resolved.get(name, ConnectionKind::Snowflake) {
            let key = match config.warehouse.connection {
                Some(_) => "warehouse.connection",
                None => "warehouse.kind",
            };
            problems.push((
                key,
                format!("the Snowflake warehouse needs its connection: {e}"),
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems
        .into_iter()
        .map(|(key, problem)| {
            let from = figment
                .find_metadata(key)
                .map(origin)
                .unwrap_or_else(|| "default".into());
            format!("{key}: {problem} (from {from})")
        })
        .collect();
    anyhow::bail!("invalid configuration:\n  {}", lines.join("\n  "))
}
