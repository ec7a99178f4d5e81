//! The `[dag]` table: id, schedule, timezone, start date and the rest of a DAG's
//! header, each problem with its line and column.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::walk::Walker;
use crate::schedule::Schedule;

pub(super) const DAG_KEYS: &[&str] = &[
    "id",
    "description",
    "tags",
    "schedule",
    "timezone",
    "start_date",
    "catchup",
    "max_active_runs",
    "triggered_by",
    "params",
    "on_failure",
    "on_success",
    "on_retry",
    "priority",
    "dagrun_timeout",
];
pub(super) struct Header {
    pub(super) id: String,
    pub(super) description: String,
    pub(super) tags: Vec<String>,
    pub(super) schedule: Schedule,
    pub(super) start_date: Option<DateTime<Utc>>,
    pub(super) catchup: bool,
    pub(super) max_active_runs: u32,
    pub(super) triggered_by: Vec<String>,
    pub(super) params: serde_json::Value,
}

pub(super) fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub(super) fn read_dag_header(w: &mut Walker<'_>, t: &DeTable<'_>) -> Option<Header> {
    const S: &str = "[dag]";
    w.reject_unknown_keys(t, DAG_KEYS, S);
    let id = match w.string(t, "id", S) {
        Some((id, span)) if !is_valid_id(&id) => {
            w.error(
                span,
                format!("invalid DAG id \"{id}\": use letters, digits, `_`, `-` and `.`"),
            );
            None
        }
        Some((id, _)) => Some(id),
        None => {
            if !t.contains_key("id") {
                w.error(0..0, "missing `id` in [dag]");
            }
            None
        }
    };
    let description = w
        .string(t, "description", S)
        .map(|d| d.0)
        .unwrap_or_default();
    let tags = w
        .strings(t, "tags", S)
        .map(|v| v.into_iter().map(|s| s.0).collect())
        .unwrap_or_default();
    let timezone = match w.string(t, "timezone", S) {
        Some((name, span)) => match name.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                w.error(span, format!("unknown timezone \"{name}\" (use an IANA name such as \"Europe/Berlin\" or \"UTC\")"));
                None
            }
        },
        None => Some(Tz::UTC),
    };
    let schedule = match (w.string(t, "schedule", S), timezone) {
        (None, Some(tz)) => Some(Schedule::manual(tz)),
        (Some((expr, _)), Some(tz)) if expr.trim().eq_ignore_ascii_case("none") => {
            Some(Schedule::manual(tz))
        }
        (Some((expr, span)), Some(tz)) => match Schedule::cron(&expr, tz) {
            Ok(s) => Some(s),
            Err(e) => {
                w.error(span, e);
                None
            }
        },
        (_, None) => None,
    };
    let start_date = match (t.get("start_date"), timezone) {
        (Some(v), Some(tz)) => read_start_date(w, v, tz),
        _ => None,
    };
    let catchup = w.boolean(t, "catchup", S).map(|b| b.0).unwrap_or(false);
    let max_active_runs = match w.count(t, "max_active_runs", S) {
        Some((0, span)) => {
            w.error(span, "`max_active_runs` in [dag] must be at least 1");
            16
        }
        Some((n, _)) => n,
        None => 16,
    };
    let triggered_by = w
        .strings(t, "triggered_by", S)
        .map(|v| v.into_iter().map(|s| s.0).collect())
        .unwrap_or_default();
    let params = w.params_table(t, S);
    Some(Header {
        params,
        triggered_by,
        id: id?,
        description,
        tags,
        schedule: schedule?,
        start_date,
        catchup,
        max_active_runs,
    })
}

/// A TOML date or datetime; without an offset it is read in the DAG's timezone.
pub(super) fn read_start_date(
    w: &mut Walker<'_>,
    v: &Spanned<DeValue<'_>>,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    let text = match v.get_ref() {
        DeValue::Datetime(d) => d.to_string(),
        DeValue::String(s) => s.to_string(),
        other => {
            w.error(
                v.span(),
                format!(
                    "`start_date` in [dag] must be a date or datetime, found {}",
                    other.type_str()
                ),
            );
            return None;
        }
    };
    if let Ok(d) = DateTime::parse_from_rfc3339(&text) {
        return Some(d.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN))
        });
    match naive.and_then(|n| tz.from_local_datetime(&n).earliest()) {
        Some(d) => Some(d.with_timezone(&Utc)),
        None => {
            w.error(
                v.span(),
                format!("invalid `start_date` \"{text}\": write 2026-01-01 or 2026-01-01T00:00:00"),
            );
            None
        }
    }
}
