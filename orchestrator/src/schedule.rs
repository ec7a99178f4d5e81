//! Cron schedules and the data intervals they cut time into.
//!
//! A DAG's schedule `s` fires at t0 < t1 < t2 ...; the run for the interval
//! `[t_i, t_i+1)` is due at `t_i+1` and its logical date is `t_i`, as in Airflow.
//! The arithmetic runs on local wall-clock time in the DAG's IANA timezone (croner over
//! chrono-tz), so "0 2 * * *" in Europe/Berlin stays at 02:00 across DST changes.

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

/// When a DAG runs by itself, if ever.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: Option<String>,
    cron: Option<Cron>,
    timezone: Tz,
}

/// A half-open data interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    /// The logical date of the run that processes this interval.
    pub start: DateTime<Utc>,
    /// When the interval closes and its run becomes due (exclusive).
    pub end: DateTime<Utc>,
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Schedule", 2)?;
        st.serialize_field("cron", &self.expr)?;
        st.serialize_field("timezone", self.timezone.name())?;
        st.end()
    }
}

/// A schedule as the store keeps it: the cron expression as written and the zone.
#[derive(Deserialize)]
struct StoredSchedule {
    cron: Option<String>,
    timezone: String,
}

impl<'de> Deserialize<'de> for Schedule {
    /// Reads a schedule back from the store's JSON, parsing its cron expression again.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let stored = StoredSchedule::deserialize(d)?;
        let timezone: Tz = stored
            .timezone
            .parse()
            .map_err(|_| D::Error::custom(format!("unknown timezone {:?}", stored.timezone)))?;
        match stored.cron {
            Some(expr) => Schedule::cron(&expr, timezone).map_err(D::Error::custom),
            None => Ok(Schedule::manual(timezone)),
        }
    }
}

impl Schedule {
    /// Manual runs only.
    pub fn manual(timezone: Tz) -> Self {
        Self {
            expr: None,
            cron: None,
            timezone,
        }
    }

    /// A 5-field cron expression as people write it ("*/5 * * * *") or a preset
    /// (@hourly, @daily, @weekly, @monthly, @yearly, @annually, @midnight).
    pub fn cron(expr: &str, timezone: Tz) -> Result<Self, String> {
        let trimmed = expr.trim();
        let normalized = if trimmed.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            trimmed
        };
        if !normalized.starts_with('@') {
            let fields = normalized.split_whitespace().count();
            if fields != 5 {
                return Err(format!(
                    "invalid schedule \"{expr}\": a cron expression has 5 fields (minute hour day-of-month month day-of-week), found {fields}"
                ));
            }
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(normalized)
            .map_err(|e| format!("invalid schedule \"{expr}\": {e}"))?;
        Ok(Self {
            expr: Some(trimmed.to_string()),
            cron: Some(cron),
            timezone,
        })
    }

    /// The cron expression as written, for pages and the API; `None` for manual DAGs.
    pub fn expr(&self) -> Option<&str> {
        self.expr.as_deref()
    }

    /// The zone the cron fields are read in, so pages can show local fire times.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// Whether the DAG only runs when triggered, so the scheduler skips it.
    pub fn is_manual(&self) -> bool {
        self.cron.is_none()
    }

    /// The first fire time at or after `t` (inclusive) or strictly after it.
    fn next(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        let cron = self.cron.as_ref()?;
        // croner keeps sub-second parts; fire times are whole seconds.
        let whole = t.trunc_subsecs(0);
        let (t, inclusive) = if whole < t {
            (whole, false)
        } else {
            (t, inclusive)
        };
        cron.find_next_occurrence(&t.with_timezone(&self.timezone), inclusive)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last fire time at or before `t`.
    fn previous(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.cron.as_ref()?;
        let t = t.trunc_subsecs(0);
        cron.find_previous_occurrence(&t.with_timezone(&self.timezone), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The first fire time strictly after `t`: when the next interval ends and its
    /// run becomes due. `None` for a manual DAG.
    pub fn next_fire_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next(t, false)
    }

    /// The interval that starts at the first fire time at or after `t`.
    pub fn interval_starting_at_or_after(&self, t: DateTime<Utc>) -> Option<Interval> {
        let start = self.next(t, true)?;
        let end = self.next(start, false)?;
        Some(Interval { start, end })
    }

    /// The interval right after `interval`: it starts where `interval` ends, so
    /// consecutive intervals never leave a hole, even across a DST gap.
    pub fn following(&self, interval: Interval) -> Option<Interval> {
        let end = self.next(interval.end, false)?;
        Some(Interval {
            start: interval.end,
            end,
        })
    }

    /// The most recent interval that has ended at or before `now`.
    pub fn latest_complete(&self, now: DateTime<Utc>) -> Option<Interval> {
        let end = self.previous(now)?;
        let start = self.previous(end - chrono::Duration::milliseconds(1))?;
        Some(Interval { start, end })
    }

    /// Intervals whose start lies in `[from, to)`, at most `limit` of them.
    pub fn intervals_starting_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<Interval> {
        let mut out = Vec::new();
        let mut next = self.interval_starting_at_or_after(from);
        while let Some(interval) = next {
            if interval.start >= to || out.len() >= limit {
                break;
            }
            out.push(interval);
            next = self.following(interval);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn six_fields_are_rejected_with_a_count() {
        let err = Schedule::cron("0 */5 * * * *", Tz::UTC).unwrap_err();
        assert!(err.contains("found 6"), "{err}");
    }

    #[test]
    fn the_next_fire_is_strictly_after_now_in_the_dag_s_own_timezone() {
        let s = Schedule::cron("*/5 * * * *", Tz::UTC).unwrap();
        assert_eq!(
            s.next_fire_after(utc(2026, 1, 1, 10, 2)),
            Some(utc(2026, 1, 1, 10, 5))
        );
        assert_eq!(
            s.next_fire_after(utc(2026, 1, 1, 10, 5)),
            Some(utc(2026, 1, 1, 10, 10))
        );
        // 06:00 in Berlin is 05:00 UTC in winter and 04:00 UTC after spring forward.
        let berlin = Schedule::cron("0 6 * * *", "Europe/Berlin".parse().unwrap()).unwrap();
        assert_eq!(
            berlin.next_fire_after(utc(2026, 3, 28, 6, 0)),
            Some(utc(2026, 3, 29, 4, 0))
        );
        assert_eq!(
            Schedule::manual(Tz::UTC).next_fire_after(utc(2026, 1, 1, 0, 0)),
            None
        );
    }

    #[test]
    fn presets_parse() {
        for p in [
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "@midnight",
        ] {
            Schedule::cron(p, Tz::UTC).unwrap();
        }
    }

    #[test]
    fn latest_complete_interval_of_an_hourly_schedule() {
        let s = Schedule::cron("@hourly", Tz::UTC).unwrap();
        let i = s.latest_complete(utc(2026, 1, 1, 10, 30)).unwrap();
        assert_eq!(
            i,
            Interval {
                start: utc(2026, 1, 1, 9, 0),
                end: utc(2026, 1, 1, 10, 0)
            }
        );
    }

    #[test]
    fn a_daily_local_schedule_keeps_its_wall_clock_time_across_spring_forward() {
        // Europe/Berlin moves from UTC+1 to UTC+2 on 2026-03-29 at 02:00 local.
        let s = Schedule::cron("0 6 * * *", "Europe/Berlin".parse().unwrap()).unwrap();
        let got = s.intervals_starting_between(utc(2026, 3, 27, 0, 0), utc(2026, 3, 31, 0, 0), 10);
        let starts: Vec<_> = got.iter().map(|i| i.start).collect();
        assert_eq!(
            starts,
            [
                utc(2026, 3, 27, 5, 0),
                utc(2026, 3, 28, 5, 0),
                utc(2026, 3, 29, 4, 0),
                utc(2026, 3, 30, 4, 0)
            ]
        );
        // The interval that spans the change is 23 hours long.
        assert_eq!(got[1].end - got[1].start, chrono::Duration::hours(23));
    }

    #[test]
    fn a_time_inside_the_spring_forward_gap_runs_once_right_after_it() {
        let s = Schedule::cron("30 2 * * *", "Europe/Berlin".parse().unwrap()).unwrap();
        let got = s.intervals_starting_between(utc(2026, 3, 28, 0, 0), utc(2026, 3, 31, 0, 0), 10);
        let starts: Vec<_> = got.iter().map(|i| i.start).collect();
        // 02:30 does not exist on 03-29: that day's tick is 03:00 CEST, as Vixie cron does.
        assert_eq!(
            starts,
            [
                utc(2026, 3, 28, 1, 30),
                utc(2026, 3, 29, 1, 0),
                utc(2026, 3, 30, 0, 30)
            ]
        );
        for pair in got.windows(2) {
            assert_eq!(
                pair[0].end, pair[1].start,
                "consecutive intervals leave no hole"
            );
        }
    }

    #[test]
    fn a_time_inside_the_fall_back_overlap_runs_once() {
        // 2026-10-25 02:00-03:00 local happens twice in Europe/Berlin.
        let s = Schedule::cron("30 2 * * *", "Europe/Berlin".parse().unwrap()).unwrap();
        let got =
            s.intervals_starting_between(utc(2026, 10, 24, 0, 0), utc(2026, 10, 27, 0, 0), 10);
        let starts: Vec<_> = got.iter().map(|i| i.start).collect();
        assert_eq!(
            starts,
            [
                utc(2026, 10, 24, 0, 30),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 26, 1, 30)
            ]
        );
    }

    #[test]
    fn fire_times_are_whole_even_from_a_fractional_now() {
        let s = Schedule::cron("@hourly", Tz::UTC).unwrap();
        let now = utc(2026, 1, 1, 10, 30) + chrono::Duration::microseconds(123_456);
        assert_eq!(s.latest_complete(now).unwrap().end, utc(2026, 1, 1, 10, 0));
        let i = s
            .interval_starting_at_or_after(
                utc(2026, 1, 1, 10, 0) + chrono::Duration::milliseconds(1),
            )
            .unwrap();
        assert_eq!(i.start, utc(2026, 1, 1, 11, 0));
    }

    #[test]
    fn manual_schedules_have_no_intervals() {
        let s = Schedule::manual(Tz::UTC);
        assert!(s.latest_complete(utc(2026, 1, 1, 0, 0)).is_none());
    }
}
