//! `sql`: runs SQL statements against a `postgres` or `snowflake` connection (default:
//! the warehouse), in one transaction unless told otherwise, like Airflow's
//! SQLExecuteQueryOperator. Its output says how many statements ran and how many rows
//! they reported (changed, or returned by a SELECT), and, when asked (`fetch`), holds
//! the first rows of the last statement as JSON. Templates in `sql` render first (`{{ ds }}`, `{{ params.table }}`, ...), as
//! in every param.

mod postgres;
mod split;

use anyhow::Context;
use async_trait::async_trait;
use orchestrator::registry::InlineFile;
use orchestrator::{ParamError, Task, TaskConfig, TaskContext};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::bronze::snowflake::Snowflake;
use crate::connection::ConnectionKind;
use crate::settings::{Settings, WarehouseKind};

/// The most rows `fetch` may ask for: an output lives in the state store.
pub const MAX_FETCH: usize = 1000;

/// The params of a `sql` task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sql {
    /// The statements, separated by `;` (or the text of `file`).
    pub sql: String,
    /// A .sql file, relative to the DAG file, read into `sql` when the DAG is loaded.
    #[serde(default)]
    pub file: Option<String>,
    /// A `postgres` or `snowflake` connection (default: the warehouse of the
    /// configuration, PostgreSQL or Snowflake).
    #[serde(default)]
    pub connection: Option<String>,
    /// All statements in one transaction, so a failing one leaves nothing behind
    /// (default); `false` runs each on its own, as autocommit would.
    #[serde(default = "yes")]
    pub transaction: bool,
    /// How many rows of the last statement go into the output (0: none; at most 1000).
    #[serde(default)]
    pub fetch: usize,
}

fn yes() -> bool {
    true
}

impl TaskConfig for Sql {
    const INLINE_FILES: &'static [InlineFile] = &[InlineFile {
        from: "file",
        into: "sql",
        templated: true,
    }];

    fn validate(&self) -> Result<(), ParamError> {
        if self.sql.trim().is_empty() {
            return Err(ParamError::at("sql", "must hold at least one statement"));
        }
        if self.fetch > MAX_FETCH {
            return Err(ParamError::at(
                "fetch",
                format!("must be at most {MAX_FETCH}: the output is kept in the state store"),
            ));
        }
        Ok(())
    }

    fn connections(&self) -> Vec<(&'static str, String)> {
        orchestrator::registry::connection_param(self.connection.as_ref())
    }
}

/// What ran: the output of a `sql` task.
#[derive(Debug, Default)]
pub struct Ran {
    /// Statements that ran.
    pub statements: usize,
    /// The rows each statement reported: changed by INSERT, UPDATE, DELETE or MERGE,
    /// returned by a SELECT (PostgreSQL's command tags).
    pub rows_affected: u64,
    /// The first rows of the last statement, each a JSON object by column name.
    pub rows: Vec<Value>,
    /// The first column of the first row of the last statement (when rows were fetched).
    pub first_cell: Option<Value>,
}

#[async_trait]
impl Task for Sql {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        let ran = self.execute(ctx).await?;
        ctx.log.info(format!(
            "Ran {} statement(s); {} row(s) affected.",
            ran.statements, ran.rows_affected
        ));
        let mut out = json!({ "statements": ran.statements, "rows_affected": ran.rows_affected });
        if self.fetch > 0 {
            out["rows"] = Value::Array(ran.rows);
        }
        Ok(out)
    }
}

impl Sql {
    /// Runs the statements where the params say.
    pub async fn execute(&self, ctx: &TaskContext) -> anyhow::Result<Ran> {
        let settings = Settings::of(ctx);
        match self.target(&settings).await? {
            Target::Postgres(pool) => {
                postgres::run(&pool, &self.sql, self.transaction, self.fetch).await
            }
            Target::Snowflake(config) => {
                let snowflake = Snowflake::connect(*config).await?;
                self.on_snowflake(&snowflake).await
            }
        }
    }
}

/// Where the statements run.
enum Target {
    Postgres(sqlx::PgPool),
    Snowflake(Box<crate::bronze::snowflake::SnowflakeConfig>),
}

impl Sql {
    async fn target(&self, settings: &Settings) -> anyhow::Result<Target> {
        let Some(name) = &self.connection else {
            return Ok(match settings.warehouse.kind {
                WarehouseKind::Postgres => Target::Postgres(settings.warehouse_pool().await?),
                WarehouseKind::Snowflake => {
                    Target::Snowflake(Box::new(settings.snowflake(None, None)?))
                }
            });
        };
        let connection = settings.connections.named(name)?;
        match connection.kind {
            ConnectionKind::Postgres => {
                let url = connection.postgres_url();
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect_lazy(url.expose())
                    .with_context(|| format!("connection `{name}` is no PostgreSQL URL"))?;
                Ok(Target::Postgres(pool))
            }
            ConnectionKind::Snowflake => Ok(Target::Snowflake(Box::new(
                settings.snowflake(Some(name), None)?,
            ))),
            other => anyhow::bail!(
                "connection `{name}` is a {other} connection; sql runs on postgres or snowflake"
            ),
        }
    }

    /// One statement after another in one session, between BEGIN and COMMIT when
    /// `transaction` (a failure rolls back what ran).
    async fn on_snowflake(&self, snowflake: &Snowflake) -> anyhow::Result<Ran> {
        let statements = split::statements(&self.sql);
        let mut ran = Ran::default();
        if self.transaction {
            snowflake.query("BEGIN").await?;
        }
        for (i, statement) in statements.iter().enumerate() {
            let rows = match snowflake.query(statement).await {
                Ok(rows) => rows,
                Err(e) => {
                    if self.transaction {
                        let _ = snowflake.query("ROLLBACK").await;
                    }
                    return Err(e.context(format!("statement {} of {}", i + 1, statements.len())));
                }
            };
            ran.statements += 1;
            ran.rows_affected += affected(&rows);
            ran.first_cell = rows
                .first()
                .and_then(|r| r.values().first().map(snowflake_cell));
            ran.rows = rows
                .into_iter()
                .take(self.fetch)
                .map(|r| r.into_json_object().map(Value::Object))
                .collect::<Result<_, _>>()
                .context("a row Snowflake returned")?;
        }
        if self.transaction {
            snowflake.query("COMMIT").await?;
        }
        Ok(ran)
    }
}

/// Snowflake answers a DML statement with one row of counts, in columns named
/// `number of rows inserted` (updated, deleted, ...).
fn affected(rows: &[snowflake_connector_rs::DynamicRow]) -> u64 {
    let Some(row) = rows.first() else { return 0 };
    row.schema()
        .columns()
        .iter()
        .zip(row.values())
        .filter(|(c, _)| c.name().to_lowercase().starts_with("number of rows"))
        .filter_map(|(_, v)| match v {
            snowflake_connector_rs::CellValue::Integer(n) => u64::try_from(*n).ok(),
            snowflake_connector_rs::CellValue::String(s) => s.parse().ok(),
            _ => None,
        })
        .sum()
}

/// A Snowflake cell as JSON, for a wait's first cell.
fn snowflake_cell(cell: &snowflake_connector_rs::CellValue) -> Value {
    use snowflake_connector_rs::CellValue;
    match cell {
        CellValue::Null => Value::Null,
        CellValue::Boolean(b) => Value::Bool(*b),
        CellValue::Integer(n) => i64::try_from(*n)
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(n.to_string())),
        CellValue::Float(f) => Value::from(*f),
        CellValue::String(s) => Value::from(s.as_str()),
        other => Value::from(format!("{other:?}")),
    }
}
