//! `wait_sql`: waits until a query's first cell is true (Airflow's SqlSensor): `true`,
//! a number other than zero, a string that does not read as false. No row, NULL, 0 or
//! false is a poke to try again. The query runs where a `sql` task would: a
//! `postgres` or `snowflake` connection, else the warehouse.

use async_trait::async_trait;
use orchestrator::{ParamError, TaskConfig, TaskContext};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Check, Poll};
use crate::branch::Condition;
use crate::sql::Sql;

/// The params of a `wait_sql` wait (besides `poke_interval` and `timeout`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitSql {
    /// The query; its first row's first column decides.
    pub sql: String,
    /// A `postgres` or `snowflake` connection (default: the warehouse).
    #[serde(default)]
    pub connection: Option<String>,
}

impl WaitSql {
    fn query(&self) -> Sql {
        Sql {
            sql: self.sql.clone(),
            file: None,
            connection: self.connection.clone(),
            transaction: true,
            fetch: 1,
        }
    }
}

/// Whether a cell reads as true.
fn truthy(cell: &Value) -> bool {
    match cell {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => Condition::Text(s.clone()).holds(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[async_trait]
impl Check for WaitSql {
    async fn check(&self, ctx: &TaskContext) -> anyhow::Result<Poll> {
        let ran = self.query().execute(ctx).await?;
        Ok(match ran.first_cell {
            Some(cell) if truthy(&cell) => {
                Poll::Met(json!({ "first_cell": cell, "row": ran.rows.first() }))
            }
            Some(cell) => Poll::NotYet(format!("the query's first cell is {cell}")),
            None => Poll::NotYet("the query returned no row".into()),
        })
    }

    fn validate(&self) -> Result<(), ParamError> {
        self.query().validate()
    }

    fn connections(&self) -> Vec<(&'static str, String)> {
        self.query().connections()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::truthy;

    #[test]
    fn a_first_cell_is_true_as_python_would_say() {
        for v in [json!(true), json!(1), json!(2.5), json!("yes"), json!("t")] {
            assert!(truthy(&v), "{v}");
        }
        for v in [
            json!(null),
            json!(false),
            json!(0),
            json!(""),
            json!("false"),
            json!("0"),
        ] {
            assert!(!truthy(&v), "{v}");
        }
    }
}
