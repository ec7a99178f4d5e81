//! The configuration's environment: `SETLIST_*` variables, the older names that still
//! set a key, and the older variables of other tools (SNOWFLAKE_*, SETLIST_AIRFLOW_*,
//! AWS_*) that now describe a named connection. Each becomes a figment layer named
//! by the variable, so errors and `config show` say where a value came from.

use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};

use super::{Config, env_name, keys};

/// Older variable names that still set a key, read under the key's own variable.
pub const ENV_ALIASES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database_url"),
    ("SETLIST_TOPIC", "kafka.topic"),
    ("SETLIST_WAREHOUSE", "warehouse.kind"),
    ("SETLIST_DBT", "dbt.binary"),
    ("SETLIST_API_TOKEN", "web.api_token"),
];

/// One value at one key, from one variable or flag, named so that errors and
/// `config show` can say where it came from.
pub(super) struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Layer {
    pub(super) fn new(
        key: &str,
        value: figment::value::Value,
        name: String,
        source: String,
    ) -> Self {
        let mut value = value;
        for part in key.rsplit('.') {
            let mut d = Dict::new();
            d.insert(part.to_string(), value);
            value = d.into();
        }
        let dict = match value {
            figment::value::Value::Dict(_, d) => d,
            _ => unreachable!("built as a dict"),
        };
        Self {
            metadata: Metadata::named(name).source(figment::Source::Custom(source)),
            dict,
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The `SETLIST_*` variables (and the older aliases) of `vars`, one layer each, the
/// older names first so that a key's own variable wins. A variable inside a section's
/// names (`SETLIST_KAFKA_...`) that names no key is an error, so that a typo is not
/// silently ignored; others (`SETLIST_HOME`, the scripts' `SETLIST_FAKESNOW_URL`) are
/// not settings and are let through.
pub(super) fn environment(vars: &[(String, String)]) -> anyhow::Result<Vec<Layer>> {
    let keys = keys();
    let defaults = serde_json::to_value(Config::default()).expect("serialises");
    let mut layers = Vec::new();
    // A number or a switch is read as one; anything else stays the text it is, so
    // that a topic named 123 is a topic, not a number.
    let layer = |key: &str, name: &str, value: &str| {
        let default = key.split('.').try_fold(&defaults, |v, part| v.get(part));
        let typed = matches!(
            default,
            Some(serde_json::Value::Number(_) | serde_json::Value::Bool(_))
        );
        let value: figment::value::Value = if typed {
            value.parse().expect("any string parses")
        } else {
            value.into()
        };
        Layer::new(key, value, "environment variable".into(), name.into())
    };
    for (alias, key) in ENV_ALIASES {
        if let Some((_, v)) = vars.iter().find(|(n, _)| n == alias)
            && !v.is_empty()
        {
            layers.push(layer(key, alias, v));
        }
    }
    let mut unknown = Vec::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("SETLIST_") else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        if let Some(connection) = rest.strip_prefix(CONN_PREFIX) {
            layers.push(Layer::new(
                &format!("connections.{}.url", connection.to_lowercase()),
                value.as_str().into(),
                "environment variable".into(),
                name.clone(),
            ));
            continue;
        }
        let in_a_section = keys
            .iter()
            .filter_map(|k| k.split_once('.'))
            .any(|(section, _)| rest.starts_with(&format!("{}_", section.to_uppercase())));
        match keys.iter().find(|k| env_name(k) == *name) {
            Some(key) => layers.push(layer(key, name, value)),
            None if ENV_ALIASES.iter().any(|(a, _)| a == name) || is_tooling(rest) => {}
            None if in_a_section => unknown.push(name.clone()),
            None => {}
        }
    }
    if !unknown.is_empty() {
        anyhow::bail!(
            "unknown setting {}: no key is named so (`setlist config show` lists every variable)",
            unknown.join(", ")
        );
    }
    layers.extend(profile_warehouse(vars));
    Ok(layers)
}

/// The value of the variable `name` in `vars`, unless it is unset or empty.
pub(super) fn var(vars: &[(String, String)], name: &str) -> Option<String> {
    vars.iter()
        .find(|(n, v)| n == name && !v.is_empty())
        .map(|(_, v)| v.clone())
}

/// `SETLIST_CONN_NAME=URL` defines the connection `name` (lower case), as
/// `AIRFLOW_CONN_NAME` does in Airflow.
const CONN_PREFIX: &str = "CONN_";

/// What a URL's user, path or parameter keeps as it is; the rest is percent-encoded
/// (a space as %20, which decodes back, never as +).
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A connection described by another tool's variables, as the layers that set it.
pub(super) struct OlderConnection {
    /// The connection's name.
    pub name: &'static str,
    /// Its settings, each from the variables it was read from.
    pub layers: Vec<Layer>,
}

/// The variables Setlist read before it had connections, as the connections they
/// describe, so that an existing deployment keeps working: SNOWFLAKE_* (dbt's too) as
/// `snowflake`, SETLIST_AIRFLOW_URL/_USERNAME/_PASSWORD as `airflow`, and the AWS_*
/// variables object_store read as `s3`. The configuration adds each only where neither
/// the file nor a SETLIST_CONN_ variable defines a connection of that name.
pub(super) fn older_connections(vars: &[(String, String)]) -> Vec<OlderConnection> {
    let get = |name: &str| var(vars, name);
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, COMPONENT).to_string();
    let layer = |name: &str, field: &str, value: String, from: &str| {
        Layer::new(
            &format!("connections.{name}.{field}"),
            value.into(),
            "environment variables".into(),
            from.into(),
        )
    };
    let mut out = Vec::new();

    if let (Some(account), Some(user)) = (get("SNOWFLAKE_ACCOUNT"), get("SNOWFLAKE_USER")) {
        const FROM: &str = "SNOWFLAKE_*";
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (param, var) in [
            ("warehouse", "SNOWFLAKE_WAREHOUSE"),
            ("role", "SNOWFLAKE_ROLE"),
            ("stage", "SNOWFLAKE_STAGE"),
            ("storage_integration", "SNOWFLAKE_STORAGE_INTEGRATION"),
            ("endpoint", "SETLIST_SNOWFLAKE_URL"),
        ] {
            if let Some(v) = get(var) {
                query.append_pair(param, &v);
            }
        }
        let query = query.finish();
        let database = get("SNOWFLAKE_DATABASE").unwrap_or_else(|| "SETLIST".into());
        let mut url = format!("snowflake://{}@{}/{}", enc(&user), account, enc(&database));
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut layers = vec![layer("snowflake", "url", url, FROM)];
        match (get("SNOWFLAKE_PRIVATE_KEY_PATH"), get("SNOWFLAKE_PASSWORD")) {
            (Some(path), _) => layers.push(layer("snowflake", "private_key_file", path, FROM)),
            (None, Some(_)) => layers.push(layer(
                "snowflake",
                "password_env",
                "SNOWFLAKE_PASSWORD".into(),
                FROM,
            )),
            (None, None) => {}
        }
        out.push(OlderConnection {
            name: "snowflake",
            layers,
        });
    }

    if let Some(base) = get("SETLIST_AIRFLOW_URL") {
        const FROM: &str = "SETLIST_AIRFLOW_*";
        let url = match (get("SETLIST_AIRFLOW_USERNAME"), base.split_once("://")) {
            (Some(user), Some((scheme, rest))) => format!("{scheme}://{}@{rest}", enc(&user)),
            _ => base,
        };
        let mut layers = vec![layer("airflow", "url", url, FROM)];
        if get("SETLIST_AIRFLOW_PASSWORD").is_some() {
            layers.push(layer(
                "airflow",
                "password_env",
                "SETLIST_AIRFLOW_PASSWORD".into(),
                FROM,
            ));
        }
        out.push(OlderConnection {
            name: "airflow",
            layers,
        });
    }

    let endpoint = get("AWS_ENDPOINT_URL").or_else(|| get("AWS_ENDPOINT"));
    let key = get("AWS_ACCESS_KEY_ID");
    let region = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION"));
    const IN_THE_URL: &[&str] = &[
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ];
    // The rest that object_store read (a session token, a web identity token file,
    // ECS's credentials URI ...) go on as they are.
    let others: Vec<(String, String)> = vars
        .iter()
        .filter(|(n, v)| {
            n.starts_with("AWS_") && !v.is_empty() && !IN_THE_URL.contains(&n.as_str())
        })
        .map(|(n, v)| (n.to_lowercase(), v.clone()))
        .filter(|(k, _)| tasks::storage::is_s3_option(k))
        .collect();
    if endpoint.is_some() || key.is_some() || region.is_some() || !others.is_empty() {
        const FROM: &str = "AWS_*";
        // No endpoint: AWS itself, whose host the URL names `aws`.
        let (host, secure) = match endpoint.as_deref().and_then(|e| e.split_once("://")) {
            Some((scheme, host)) => (host.trim_end_matches('/').to_string(), scheme != "http"),
            None => ("aws".to_string(), true),
        };
        let user = key.map(|k| format!("{}@", enc(&k))).unwrap_or_default();
        let mut url = format!("s3://{user}{host}?secure={secure}");
        if let Some(r) = region {
            url.push_str(&format!("&region={}", enc(&r)));
        }
        let mut layers = vec![layer("s3", "url", url, FROM)];
        if get("AWS_SECRET_ACCESS_KEY").is_some() {
            layers.push(layer(
                "s3",
                "password_env",
                "AWS_SECRET_ACCESS_KEY".into(),
                FROM,
            ));
        }
        for (k, v) in others {
            layers.push(layer("s3", &format!("extra.{k}"), v, FROM));
        }
        out.push(OlderConnection { name: "s3", layers });
    }
    out
}

/// Variables inside a section's names that are not settings of their own: the dbt
/// profile's SETLIST_WAREHOUSE_* (read as one `warehouse.url`, [`profile_warehouse`]),
/// the scripts' broker port and Docker Compose's published web port.
fn is_tooling(rest: &str) -> bool {
    const NAMES: &[&str] = &[
        "KAFKA_PORT",
        "WEB_PORT",
        "WAREHOUSE_HOST",
        "WAREHOUSE_PORT",
        "WAREHOUSE_USER",
        "WAREHOUSE_PASSWORD",
        "WAREHOUSE_DB",
        "WAREHOUSE_SSLMODE",
    ];
    NAMES.contains(&rest)
}

/// The dbt profile's older variables (SETLIST_WAREHOUSE_HOST, _PORT, _USER, _PASSWORD,
/// _DB, and _SSLMODE with any of them) as the one `warehouse.url` they describe, when any is set and
/// SETLIST_WAREHOUSE_URL is not: the loader, dbt and the pages then share that
/// warehouse, as the profile alone used to mean for dbt.
fn profile_warehouse(vars: &[(String, String)]) -> Option<Layer> {
    let get = |name: &str| var(vars, name);
    let parts =
        ["HOST", "PORT", "USER", "PASSWORD", "DB"].map(|p| get(&format!("SETLIST_WAREHOUSE_{p}")));
    if get("SETLIST_WAREHOUSE_URL").is_some() || parts.iter().all(Option::is_none) {
        return None;
    }
    let [host, port, user, password, db] = parts;
    let mut url = url::Url::parse("postgres://localhost/").expect("a valid base");
    url.set_host(Some(host.as_deref().unwrap_or("127.0.0.1")))
        .ok()?;
    url.set_port(Some(port.as_deref().unwrap_or("5432").parse().ok()?))
        .ok()?;
    url.set_username(user.as_deref().unwrap_or("postgres"))
        .ok()?;
    if let Some(p) = &password {
        url.set_password(Some(p)).ok()?;
    }
    url.set_path(db.as_deref().unwrap_or("setlist"));
    if let Some(mode) = get("SETLIST_WAREHOUSE_SSLMODE") {
        url.query_pairs_mut().append_pair("sslmode", &mode);
    }
    Some(Layer::new(
        "warehouse.url",
        url.to_string().into(),
        "environment variables".into(),
        "SETLIST_WAREHOUSE_HOST/_PORT/_USER/_PASSWORD/_DB".into(),
    ))
}
