//! The `sql` kind on PostgreSQL: every statement in one round trip (the simple query
//! protocol, which takes several statements), inside one transaction when asked; rows
//! come back as text and become JSON by their column's type.

use anyhow::Context;
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{Column, Either, PgPool, Row, TypeInfo};

use super::Ran;

/// Runs `sql` on `pool`; keeps the first `fetch` rows of the last statement.
pub async fn run(pool: &PgPool, sql: &str, transaction: bool, fetch: usize) -> anyhow::Result<Ran> {
    let mut conn = pool
        .acquire()
        .await
        .context("Failed to connect to the PostgreSQL the sql task runs on")?;
    let mut ran = Ran::default();
    // The simple query protocol runs a multi-statement string as one implicit
    // transaction unless it has BEGIN/COMMIT of its own; `false` makes each
    // statement its own by sending them one after another.
    let batches: Vec<String> = if transaction {
        vec![sql.to_string()]
    } else {
        super::split::statements(sql)
    };
    for batch in batches {
        let mut rows: Vec<Value> = Vec::new();
        let mut first: Option<Value> = None;
        let mut stream = sqlx::raw_sql(&batch).fetch_many(&mut *conn);
        while let Some(item) = stream.try_next().await.map_err(|e| anyhow::anyhow!(e))? {
            match item {
                Either::Left(done) => {
                    ran.statements += 1;
                    ran.rows_affected += done.rows_affected();
                    ran.first_cell = first.take();
                    ran.rows = std::mem::take(&mut rows);
                }
                Either::Right(row) if rows.len() < fetch => {
                    if rows.is_empty() {
                        first = Some(
                            to_json_cells(&row)
                                .next()
                                .map(|(_, v)| v)
                                .unwrap_or(Value::Null),
                        );
                    }
                    rows.push(to_json(&row))
                }
                Either::Right(_) => {}
            }
        }
    }
    Ok(ran)
}

/// One row as a JSON object: numbers, booleans and JSON as themselves, everything
/// else (NUMERIC too, to keep its digits) as the text PostgreSQL sent.
fn to_json(row: &PgRow) -> Value {
    Value::Object(to_json_cells(row).collect())
}

/// A row's cells in column order, each by its column's name, as [`to_json`] reads them.
fn to_json_cells(row: &PgRow) -> impl Iterator<Item = (String, Value)> + '_ {
    row.columns().iter().enumerate().map(|(i, column)| {
        let text: Option<&str> = row.try_get_unchecked(i).ok().flatten();
        let value = match (text, column.type_info().name()) {
            (None, _) => Value::Null,
            (Some(t), "BOOL") => Value::Bool(t == "t"),
            (Some(t), "INT2" | "INT4" | "INT8" | "OID") => {
                t.parse::<i64>().map(Value::from).unwrap_or(Value::from(t))
            }
            (Some(t), "FLOAT4" | "FLOAT8") => {
                t.parse::<f64>().map(Value::from).unwrap_or(Value::from(t))
            }
            (Some(t), "JSON" | "JSONB") => serde_json::from_str(t).unwrap_or(Value::from(t)),
            (Some(t), _) => Value::from(t),
        };
        (column.name().to_string(), value)
    })
}
