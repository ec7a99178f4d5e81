//! Bronze on Snowflake. The warehouse reads the objects itself: an external stage
//! over the lake and one `COPY INTO` per object, in a transaction with its manifest
//! row. Snowflake's own load history (COPY skips a file it loaded before) backs the
//! manifest up, so even a manifest lost by hand cannot load an object twice.
//!
//! The client is snowflake-connector-rs rather than snowflake-api: it is maintained,
//! binds parameters, polls queries that outlive one HTTP response, does key-pair
//! auth, and takes an endpoint override, which is how the tests reach the fakesnow
//! emulator that scripts/snowflake.sh starts.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use arrow_array::RecordBatch;
use arrow_schema::DataType;
use async_trait::async_trait;
use snowflake_connector_rs::{
    AuthConfig, CellValue, Client, ClientConfig, DynamicRow, EndpointConfig, KeyPairConfig,
    QueryConfig, Session, SessionConfig, Statement,
};
use uuid::Uuid;

use super::Warehouse;
use crate::connection::Connection;
use crate::raw::parquet::schema;

/// Where and how to reach Snowflake: a `snowflake` connection
/// (`snowflake://USER@ACCOUNT/DATABASE?warehouse=&role=&stage=&storage_integration=&endpoint=`).
#[derive(Debug, Clone)]
pub struct SnowflakeConfig {
    /// The account identifier, which names the endpoint unless `endpoint` overrides it.
    pub account: String,
    /// The user the loader signs in as.
    pub user: String,
    /// How that user proves who it is.
    pub auth: SnowflakeAuth,
    /// The database holding the bronze schema.
    pub database: String,
    /// The virtual warehouse that runs the loads; `None` uses the user's default.
    pub warehouse: Option<String>,
    /// The role to load as; `None` uses the user's default.
    pub role: Option<String>,
    /// Instead of https://ACCOUNT.snowflakecomputing.com (an emulator, a proxy).
    pub endpoint: Option<String>,
    /// The external stage over the lake, created when missing.
    pub stage: String,
    /// The stage's URL (the lake's root); `None` uses an existing stage as it is.
    pub stage_url: Option<String>,
    /// The storage integration an s3:// stage authenticates with.
    pub storage_integration: Option<String>,
}

/// How the loader signs in to Snowflake.
#[derive(Clone)]
pub enum SnowflakeAuth {
    /// An unencrypted PKCS#8 private key in PEM form, as Snowflake's key-pair auth wants.
    KeyPair(String),
    /// A password, for accounts without key-pair auth.
    Password(String),
}

impl std::fmt::Debug for SnowflakeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::KeyPair(_) => "KeyPair(..)",
            Self::Password(_) => "Password(..)",
        })
    }
}

impl SnowflakeConfig {
    /// The account, user and secrets of `connection`; the database is its URL's path
    /// (default SETLIST), and `warehouse`, `role`, `stage` (default
    /// bronze.setlist_lake), `storage_integration` and `endpoint` its parameters.
    pub fn from_connection(
        connection: &Connection,
        stage_url: Option<String>,
    ) -> anyhow::Result<Self> {
        let auth = match (connection.private_key(), connection.password()) {
            (Some(pem), _) => SnowflakeAuth::KeyPair(pem.expose().to_string()),
            (None, Some(password)) => SnowflakeAuth::Password(password.expose().to_string()),
            (None, None) => anyhow::bail!(
                "connection `{}` has neither a private key nor a password",
                connection.name
            ),
        };
        Ok(Self {
            account: connection
                .host()
                .context("a Snowflake connection names its account as the URL's host")?
                .to_string(),
            user: connection
                .login()
                .context("a Snowflake connection names its user in the URL")?,
            auth,
            database: connection
                .path_segment()
                .unwrap_or_else(|| "SETLIST".into()),
            warehouse: connection.param("warehouse"),
            role: connection.param("role"),
            endpoint: connection.param("endpoint"),
            stage: connection
                .param("stage")
                .unwrap_or_else(|| "bronze.setlist_lake".into()),
            stage_url,
            storage_integration: connection.param("storage_integration"),
        })
    }
}

/// Bronze on Snowflake: `bronze.plays` and `bronze.load_manifest`.
pub struct Snowflake {
    session: Session,
    config: SnowflakeConfig,
    /// Serialises the transactions of one session (a session is one transaction).
    lock: tokio::sync::Mutex<()>,
}

/// The raw columns as Snowflake types, and the COPY transform that reads each from
/// a Parquet row.
fn columns() -> Vec<(String, &'static str)> {
    schema()
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Utf8 => "VARCHAR",
                DataType::Int32 | DataType::Int64 => "NUMBER(19, 0)",
                DataType::Boolean => "BOOLEAN",
                DataType::Timestamp(_, _) => "TIMESTAMP_TZ",
                other => unreachable!("the raw schema has no {other} column"),
            };
            (f.name().clone(), ty)
        })
        .collect()
}

/// A SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A column by name, whatever case the server gave it.
fn cell<'r>(row: &'r DynamicRow, column: &str) -> anyhow::Result<&'r CellValue> {
    [
        column.to_string(),
        column.to_uppercase(),
        column.to_lowercase(),
    ]
    .iter()
    .find_map(|name| row.value(name).ok())
    .with_context(|| format!("the result has no column {column}"))
}

fn text(row: &DynamicRow, column: &str) -> anyhow::Result<Option<String>> {
    Ok(match cell(row, column)? {
        CellValue::Null => None,
        CellValue::String(s) => Some(s.clone()),
        other => Some(format!("{other:?}")),
    })
}

fn number(row: &DynamicRow, column: &str) -> anyhow::Result<i64> {
    match cell(row, column)? {
        CellValue::Integer(n) => Ok(*n as i64),
        CellValue::String(s) => s.parse().with_context(|| format!("{column} = {s}")),
        other => anyhow::bail!("{column} is {other:?}, expected a number"),
    }
}

impl Snowflake {
    /// Signs in with `config`, ready to load; fails early on bad credentials.
    pub async fn connect(config: SnowflakeConfig) -> anyhow::Result<Self> {
        let auth = match &config.auth {
            SnowflakeAuth::KeyPair(pem) => AuthConfig::key_pair(KeyPairConfig::from_pem(pem)),
            SnowflakeAuth::Password(p) => AuthConfig::password(p.as_str()),
        };
        let mut session = SessionConfig::new()
            .with_database(&config.database)
            .with_session_parameter("QUERY_TAG", "setlist.load_bronze".into());
        if let Some(w) = &config.warehouse {
            session = session.with_warehouse(w);
        }
        if let Some(r) = &config.role {
            session = session.with_role(r);
        }
        let mut client_config = ClientConfig::new(&config.user, &config.account, auth)
            .with_session(session)
            .with_query(QueryConfig::new().with_query_response_timeout(Duration::from_secs(600)));
        if let Some(url) = &config.endpoint {
            let url = url
                .parse()
                .with_context(|| format!("the Snowflake endpoint {url} is not a URL"))?;
            client_config = client_config.with_endpoint(EndpointConfig::custom_base_url(url));
        }
        let client = Client::new(client_config).context("Failed to configure Snowflake")?;
        let session = client
            .create_session()
            .await
            .with_context(|| format!("Failed to log in to Snowflake account {}", config.account))?;
        Ok(Self {
            session,
            config,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Runs one statement and returns its rows.
    pub async fn query(&self, sql: &str) -> anyhow::Result<Vec<DynamicRow>> {
        let rows = self
            .session
            .query(sql.to_string())
            .await
            .with_context(|| format!("Snowflake rejected: {}", first_line(sql)))?
            .collect()
            .await?;
        Ok(rows)
    }

    /// The COPY that loads one object with its key and load id on every row.
    fn copy_sql(&self, key: &str, load_id: Uuid) -> String {
        let cols = columns();
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        let reads: Vec<String> = cols.iter().map(|(n, ty)| format!("$1:{n}::{ty}")).collect();
        format!(
            "COPY INTO bronze.plays ({names}, source_object, load_id)
             FROM (SELECT {reads}, {key}, {load_id} FROM @{stage})
             FILES = ({key}) FILE_FORMAT = (TYPE = PARQUET) ON_ERROR = ABORT_STATEMENT",
            names = names.join(", "),
            reads = reads.join(", "),
            key = literal(key),
            load_id = literal(&load_id.to_string()),
            stage = self.config.stage,
        )
    }

    async fn create_tables(&self, cols: &[String]) -> anyhow::Result<()> {
        self.query(&format!(
            "CREATE TABLE IF NOT EXISTS bronze.plays ({},
                 source_object VARCHAR NOT NULL,
                 load_id VARCHAR NOT NULL,
                 loaded_at TIMESTAMP_TZ NOT NULL DEFAULT CURRENT_TIMESTAMP())",
            cols.join(", ")
        ))
        .await?;
        self.query(
            "CREATE TABLE IF NOT EXISTS bronze.load_manifest (
                 object_key VARCHAR PRIMARY KEY,
                 load_id VARCHAR NOT NULL,
                 rows NUMBER(19, 0) NOT NULL,
                 loaded_at TIMESTAMP_TZ NOT NULL DEFAULT CURRENT_TIMESTAMP())",
        )
        .await?;
        Ok(())
    }
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or_default()
}

#[async_trait]
impl Warehouse for Snowflake {
    async fn ensure_bronze(&self) -> anyhow::Result<()> {
        let _one = self.lock.lock().await;
        self.query("CREATE SCHEMA IF NOT EXISTS bronze").await?;
        // Tables only when missing: a CREATE, even IF NOT EXISTS, makes the emulator
        // forget its load history (Snowflake keeps it), and DDL every run is noise.
        let existing = self
            .query(
                "SELECT table_name FROM information_schema.tables
                 WHERE table_schema = 'BRONZE' AND table_name IN ('PLAYS', 'LOAD_MANIFEST')",
            )
            .await?
            .len();
        let cols: Vec<String> = columns()
            .iter()
            .map(|(n, ty)| format!("{n} {ty}"))
            .collect();
        if existing < 2 {
            self.create_tables(&cols).await?;
        } else {
            // A field added to the play since the table was made gets its column.
            let have: Vec<String> = self
                .query(
                    "SELECT column_name FROM information_schema.columns
                     WHERE table_schema = 'BRONZE' AND table_name = 'PLAYS'",
                )
                .await?
                .iter()
                .filter_map(|row| text(row, "column_name").ok().flatten())
                .map(|c| c.to_lowercase())
                .collect();
            for (name, ty) in columns() {
                // No columns listed: the server does not say; leave the table be.
                if !have.is_empty() && !have.contains(&name) {
                    self.query(&format!("ALTER TABLE bronze.plays ADD COLUMN {name} {ty}"))
                        .await?;
                }
            }
        }
        if let Some(url) = &self.config.stage_url {
            let integration = self
                .config
                .storage_integration
                .as_deref()
                .map(|i| format!(" STORAGE_INTEGRATION = {i}"))
                .unwrap_or_default();
            self.query(&format!(
                "CREATE STAGE IF NOT EXISTS {} URL = {}{integration}",
                self.config.stage,
                literal(url)
            ))
            .await?;
        }
        Ok(())
    }

    async fn loaded(&self, keys: &[String]) -> anyhow::Result<HashSet<String>> {
        let _one = self.lock.lock().await;
        let mut found = HashSet::new();
        for chunk in keys.chunks(1_000) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut statement = Statement::new_positional(format!(
                "SELECT object_key FROM bronze.load_manifest WHERE object_key IN ({marks})"
            ));
            for key in chunk {
                statement = statement.bind(key.clone());
            }
            let rows: Vec<DynamicRow> = self.session.query(statement).await?.collect().await?;
            for row in &rows {
                found.extend(text(row, "OBJECT_KEY")?);
            }
        }
        Ok(found)
    }

    async fn load(
        &self,
        key: &str,
        load_id: Uuid,
        batches: &[RecordBatch],
    ) -> anyhow::Result<Option<u64>> {
        let expected: usize = batches.iter().map(|b| b.num_rows()).sum();
        let _one = self.lock.lock().await;
        self.query("BEGIN").await?;
        let outcome = async {
            let copied = self.query(&self.copy_sql(key, load_id)).await?;
            let row = copied
                .first()
                .with_context(|| format!("COPY of {key} reported no file"))?;
            let status = text(row, "status")?.unwrap_or_default();
            match status.as_str() {
                "LOADED" => {}
                "LOAD_SKIPPED" => return Ok(None),
                _ => anyhow::bail!(
                    "COPY of {key}: {status}: {}",
                    text(row, "first_error")?.unwrap_or_default()
                ),
            }
            let rows = number(row, "rows_loaded")?;
            anyhow::ensure!(
                rows as usize == expected,
                "COPY of {key} loaded {rows} rows, the object holds {expected}"
            );
            self.query(&format!(
                "INSERT INTO bronze.load_manifest (object_key, load_id, rows) VALUES ({}, {}, {rows})",
                literal(key),
                literal(&load_id.to_string())
            ))
            .await?;
            Ok(Some(rows as u64))
        }
        .await;
        match outcome {
            Ok(Some(rows)) => {
                self.query("COMMIT").await?;
                Ok(Some(rows))
            }
            Ok(None) => {
                // Snowflake loaded it before, so the manifest must say so too.
                self.query("ROLLBACK").await?;
                self.query(&format!(
                    "INSERT INTO bronze.load_manifest (object_key, load_id, rows)
                     SELECT {k}, {l}, 0 WHERE NOT EXISTS
                         (SELECT 1 FROM bronze.load_manifest WHERE object_key = {k})",
                    k = literal(key),
                    l = literal(&load_id.to_string())
                ))
                .await?;
                Ok(None)
            }
            Err(e) => {
                let _ = self.query("ROLLBACK").await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\b"), r"'a\\b'");
    }

    #[test]
    fn every_raw_column_has_a_snowflake_type() {
        let cols = columns();
        assert_eq!(cols.len(), schema().fields().len());
        assert!(cols.contains(&("ts".to_string(), "TIMESTAMP_TZ")));
    }
}
