//! Pipeline health: the counts at each stage, in all and per hour of landing, so a
//! person sees at a glance that nothing was lost, and how long ago the lander wrote.
//! The ledger lives in the state store, the rest in the warehouse; objects are
//! matched by key in Rust, so the two may be different databases. The broker tells
//! how many messages were produced; the lander's lag is what it has not landed yet.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::response::Html;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::analytics::grouped;
use super::page;
use crate::AppState;
use crate::error::ApiError;

pub struct Totals {
    pub produced: String,
    pub landed: String,
    pub dead: String,
    pub bronze: String,
    pub silver: String,
    pub quarantined: String,
    pub gold: String,
}

pub struct Hour {
    pub hour: String,
    pub objects: String,
    pub landed: String,
    pub dead: String,
    pub loaded: String,
    pub waiting: String,
}

/// One partition of the topic: produced (the high watermark), landed through (the
/// ledger's next offset) and the lander's lag between them.
pub struct Partition {
    pub partition: i32,
    pub produced: String,
    pub landed: String,
    pub lag: String,
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthPage {
    last_written: String,
    topic: String,
    /// Why the broker could not be asked, if it could not.
    broker_error: Option<String>,
    partitions: Vec<Partition>,
    lag: String,
    /// How many landed offsets lie beyond the broker's high watermarks, if any.
    under_reported: Option<String>,
    totals: Totals,
    hours: Vec<Hour>,
}

/// A count from the warehouse, or 0 when its table does not exist yet.
async fn count(state: &AppState, sql: &str) -> Result<i64, ApiError> {
    match sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&state.warehouse)
        .await
    {
        Ok(n) => Ok(n),
        Err(e) if crate::missing_table(&e) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

pub async fn show(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let objects: Vec<(String, DateTime<Utc>, i64, i64)> = sqlx::query_as(
        "SELECT object_key, written_at, rows::bigint, dead_letters::bigint FROM setlist.raw_objects
         WHERE state = 'written' AND object_key IS NOT NULL",
    )
    .fetch_all(&state.pool)
    .await?;
    let loaded: HashMap<String, i64> = match sqlx::query_as::<_, (String, i64)>(
        "SELECT object_key, rows FROM bronze.load_manifest",
    )
    .fetch_all(&state.warehouse)
    .await
    {
        Ok(rows) => rows.into_iter().collect(),
        Err(e) if crate::missing_table(&e) => HashMap::new(),
        Err(e) => return Err(e.into()),
    };
    // hour -> (objects, landed, dead, loaded)
    let mut hours: std::collections::BTreeMap<DateTime<Utc>, (i64, i64, i64, i64)> =
        Default::default();
    for (key, written, rows, dead) in &objects {
        let hour = written
            .duration_trunc(TimeDelta::hours(1))
            .unwrap_or(*written);
        let e = hours.entry(hour).or_default();
        e.0 += 1;
        e.1 += rows;
        e.2 += dead;
        e.3 += loaded.get(key).copied().unwrap_or(0);
    }
    let last = objects.iter().map(|o| o.1).max();
    let kafka = &state.config.kafka;
    let through: HashMap<i32, i64> = sqlx::query_as(
        "SELECT partition, max(last_offset) + 1 FROM setlist.raw_objects
         WHERE topic = $1 AND state = 'written' GROUP BY partition",
    )
    .bind(&kafka.topic)
    .fetch_all(&state.pool)
    .await?
    .into_iter()
    .collect();
    let (partitions, broker_error) = match kafka.watermarks(Duration::from_secs(2)).await {
        Ok(marks) => (marks, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    let produced: i64 = partitions.iter().map(|p| p.high - p.low).sum();
    // tansu 0.6 can report a high watermark below offsets its consumers already
    // read (seen after a second producer replayed events); such a partition has no
    // lag, and the page says the broker under-reports.
    let landed_through = |p: &tasks::kafka::Watermarks| {
        through
            .get(&p.partition)
            .copied()
            .unwrap_or(p.low)
            .max(p.low)
    };
    let lag: i64 = partitions
        .iter()
        .map(|p| (p.high - landed_through(p)).max(0))
        .sum();
    let under_reported: i64 = partitions
        .iter()
        .map(|p| (landed_through(p) - p.high).max(0))
        .sum();
    let totals = Totals {
        produced: if broker_error.is_some() {
            "?".into()
        } else {
            grouped(produced)
        },
        landed: grouped(objects.iter().map(|o| o.2).sum()),
        dead: grouped(objects.iter().map(|o| o.3).sum()),
        bronze: grouped(loaded.values().sum()),
        silver: grouped(count(&state, "SELECT count(*) FROM silver.int_plays__accepted").await?),
        quarantined: grouped(
            count(&state, "SELECT count(*) FROM silver.int_plays__quarantined").await?,
        ),
        gold: grouped(count(&state, "SELECT count(*) FROM gold.fct_plays").await?),
    };
    page(HealthPage {
        topic: kafka.topic.clone(),
        lag: if broker_error.is_some() {
            "?".into()
        } else {
            grouped(lag)
        },
        broker_error,
        under_reported: (under_reported > 0).then(|| grouped(under_reported)),
        partitions: partitions
            .iter()
            .map(|p| {
                let landed = landed_through(p);
                Partition {
                    partition: p.partition,
                    produced: grouped(p.high - p.low),
                    landed: grouped(landed - p.low),
                    lag: grouped((p.high - landed).max(0)),
                }
            })
            .collect(),
        last_written: match last {
            Some(t) => format!(
                "{} ({:.0} s ago)",
                t.format("%Y-%m-%d %H:%M:%S"),
                (Utc::now() - t).num_milliseconds() as f64 / 1e3
            ),
            None => "never".into(),
        },
        totals,
        hours: hours
            .into_iter()
            .rev()
            .take(48)
            .map(|(hour, (objects, landed, dead, loaded))| Hour {
                hour: hour.format("%Y-%m-%d %H:00").to_string(),
                objects: grouped(objects),
                landed: grouped(landed),
                dead: grouped(dead),
                loaded: grouped(loaded),
                waiting: grouped(landed - loaded),
            })
            .collect(),
    })
}
