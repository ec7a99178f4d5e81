//! The analytics dashboard: what gold holds for a date range (plays and minutes by
//! region, plays per hour, top tracks and their trend, listeners by tier, device
//! mix), numbers formatted for people and charts drawn by Chart.js (vendored).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::page;
use crate::AppState;
use crate::error::ApiError;

pub struct TrackRow {
    pub name: String,
    pub artist: String,
    pub plays: String,
    pub listeners: String,
    pub skip_rate: String,
}

pub struct TierRow {
    pub tier: String,
    pub daily_listeners: String,
    pub minutes_per_listener: String,
    pub sessions: String,
    pub skip_rate: String,
}

#[derive(Template, Default)]
#[template(path = "analytics.html")]
struct AnalyticsPage {
    from: String,
    to: String,
    /// Why there is nothing to show (no gold yet), if so.
    missing: Option<String>,
    total_plays: String,
    total_minutes: String,
    total_listeners: String,
    tracks: Vec<TrackRow>,
    tiers: Vec<TierRow>,
    /// The charts' data, JSON safe to put inside a script element.
    data: String,
}

#[derive(Deserialize)]
pub struct Range {
    from: Option<String>,
    to: Option<String>,
}

/// `1234567` as `1,234,567`.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn percent(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn date(text: Option<&str>) -> Option<NaiveDate> {
    text.and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
}

pub async fn show(
    State(state): State<AppState>,
    Query(range): Query<Range>,
) -> Result<Html<String>, ApiError> {
    let db = &state.warehouse;
    // Default: the last 7 days that gold has.
    let latest: Result<Option<NaiveDate>, sqlx::Error> =
        sqlx::query_scalar("SELECT max(played_on) FROM gold.agg_listener_daily")
            .fetch_one(db)
            .await;
    let latest = match latest {
        Ok(d) => d.unwrap_or_else(|| Utc::now().date_naive()),
        Err(e) if crate::missing_table(&e) => {
            let today = Utc::now().date_naive();
            return page(AnalyticsPage {
                from: today.to_string(),
                to: today.to_string(),
                missing: Some(
                    "Gold has no tables yet: the spotify_pipeline DAG builds them once plays arrive."
                        .into(),
                ),
                ..AnalyticsPage::default()
            });
        }
        Err(e) => return Err(e.into()),
    };
    let to = date(range.to.as_deref()).unwrap_or(latest);
    let from = date(range.from.as_deref()).unwrap_or(to - Duration::days(6));
    let (from, to) = if from <= to { (from, to) } else { (to, from) };
    let end = to + Duration::days(1);

    // The queries run side by side on the warehouse pool: the page takes as long
    // as the slowest, the top tracks over agg_track_daily.
    let regions = sqlx::query_as::<_, (String, i64, f64)>(
        "SELECT region, sum(plays)::bigint, sum(minutes_played)::float8 FROM gold.agg_region_hourly
         WHERE played_hour >= $1 AND played_hour < $2 GROUP BY region ORDER BY 2 DESC",
    )
    .bind(from)
    .bind(end)
    .fetch_all(db);
    let hours = sqlx::query_as::<_, (chrono::DateTime<Utc>, i64)>(
        "SELECT played_hour::timestamptz, sum(plays)::bigint FROM gold.agg_region_hourly
         WHERE played_hour >= $1 AND played_hour < $2 GROUP BY played_hour ORDER BY played_hour",
    )
    .bind(from)
    .bind(end)
    .fetch_all(db);
    // The ten most played tracks of the range, then their names; summing the counts
    // as integer (into bigint) is several times faster than bigint (into numeric).
    let top = sqlx::query_as::<_, (String, String, String, i64, i64, f64)>(
        "WITH top AS (
             SELECT track_id, sum(plays::integer) AS plays,
                    sum(unique_listeners::integer) AS listeners,
                    sum(skipped_plays::integer) AS skipped
             FROM gold.agg_track_daily WHERE played_on BETWEEN $1 AND $2
             GROUP BY track_id ORDER BY plays DESC LIMIT 10)
         SELECT t.track_id, d.track_name, d.artist_name, t.plays, t.listeners,
                (t.skipped::float8 / nullif(t.plays, 0))::float8
         FROM top t JOIN gold.dim_tracks d ON d.track_id = t.track_id
         ORDER BY t.plays DESC, t.track_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db);
    let tiers = sqlx::query_as::<_, (String, f64, f64, i64, f64)>(
        "SELECT subscription, avg(active_listeners)::float8,
                (sum(minutes_played) / nullif(sum(active_listeners), 0))::float8,
                sum(sessions)::bigint, (sum(skipped_plays)::float8 / nullif(sum(plays), 0))::float8
         FROM gold.agg_listener_daily WHERE played_on BETWEEN $1 AND $2
         GROUP BY subscription ORDER BY 2 DESC",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db);
    let devices = sqlx::query_as::<_, (String, i64)>(
        "SELECT device_key, sum(plays)::bigint FROM gold.agg_device_daily
         WHERE played_on BETWEEN $1 AND $2 GROUP BY device_key ORDER BY 2 DESC",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db);
    let listeners = sqlx::query_scalar::<_, i64>(
        "SELECT coalesce(sum(active_listeners), 0)::bigint FROM gold.agg_listener_daily
         WHERE played_on BETWEEN $1 AND $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(db);
    let (regions, hours, top, tiers, devices, listeners) =
        tokio::try_join!(regions, hours, top, tiers, devices, listeners)?;
    let ids: Vec<String> = top.iter().map(|t| t.0.clone()).collect();
    let trend: Vec<(String, NaiveDate, i64)> = sqlx::query_as(
        "SELECT track_id, played_on, plays::bigint FROM gold.agg_track_daily
         WHERE track_id = ANY ($1) AND played_on BETWEEN $2 AND $3",
    )
    .bind(&ids)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;

    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let track_trends: Vec<_> = top
        .iter()
        .map(|(id, name, ..)| {
            let plays: Vec<i64> = days
                .iter()
                .map(|d| {
                    trend
                        .iter()
                        .find(|(t, day, _)| t == id && day == d)
                        .map_or(0, |x| x.2)
                })
                .collect();
            json!({ "name": name, "plays": plays })
        })
        .collect();
    let data = json!({
        "regions": regions.iter().map(|(r, p, m)| json!({"region": r, "plays": p, "minutes": m.round()})).collect::<Vec<_>>(),
        "hours": hours.iter().map(|(h, p)| json!({"hour": h.format("%m-%d %H:00").to_string(), "plays": p})).collect::<Vec<_>>(),
        "track_days": days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "track_trends": track_trends,
        "devices": devices.iter().map(|(d, p)| json!({"device": d, "plays": p})).collect::<Vec<_>>(),
    })
    .to_string()
    .replace("</", "<\\/");

    page(AnalyticsPage {
        from: from.to_string(),
        to: to.to_string(),
        missing: None,
        total_plays: grouped(regions.iter().map(|r| r.1).sum()),
        total_minutes: grouped(regions.iter().map(|r| r.2).sum::<f64>().round() as i64),
        total_listeners: grouped(listeners),
        tracks: top
            .into_iter()
            .map(|(_, name, artist, plays, listeners, skip)| TrackRow {
                name,
                artist,
                plays: grouped(plays),
                listeners: grouped(listeners),
                skip_rate: percent(skip),
            })
            .collect(),
        tiers: tiers
            .into_iter()
            .map(|(tier, daily, minutes, sessions, skip)| TierRow {
                tier,
                daily_listeners: grouped(daily.round() as i64),
                minutes_per_listener: format!("{minutes:.1}"),
                sessions: grouped(sessions),
                skip_rate: percent(skip),
            })
            .collect(),
        data,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(super::grouped(0), "0");
        assert_eq!(super::grouped(999), "999");
        assert_eq!(super::grouped(1_000), "1,000");
        assert_eq!(super::grouped(-1_234_567), "-1,234,567");
    }
}
