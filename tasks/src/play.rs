//! The play event: one JSON object per play on the topic, keyed by user_id. Field
//! names follow Spotify's streaming-history export where one exists. See
//! docs/play-event.md for the contract.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Messages larger than this go to the dead-letter prefix unread.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// One play. Strings borrow where they can: the simulator lends them from its
/// catalog, the lander from the message buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayEvent<'a> {
    pub event_id: Uuid,
    /// When the play ended, UTC, millisecond precision.
    #[serde(with = "ts_millis")]
    pub ts: DateTime<Utc>,
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
    #[serde(borrow)]
    pub track_id: Cow<'a, str>,
    #[serde(borrow)]
    pub track_name: Cow<'a, str>,
    #[serde(borrow)]
    pub artist_id: Cow<'a, str>,
    #[serde(borrow)]
    pub artist_name: Cow<'a, str>,
    #[serde(borrow)]
    pub album_name: Cow<'a, str>,
    pub ms_played: i64,
    pub track_duration_ms: i64,
    #[serde(borrow)]
    pub reason_start: Cow<'a, str>,
    #[serde(borrow)]
    pub reason_end: Cow<'a, str>,
    pub skipped: bool,
    pub shuffle: bool,
    pub offline: bool,
    #[serde(borrow)]
    pub platform: Cow<'a, str>,
    #[serde(borrow)]
    pub device_type: Cow<'a, str>,
    /// ISO 3166-1 alpha-2.
    #[serde(borrow)]
    pub conn_country: Cow<'a, str>,
    #[serde(borrow)]
    pub region: Cow<'a, str>,
    #[serde(borrow)]
    pub city: Cow<'a, str>,
    #[serde(borrow)]
    pub subscription: Cow<'a, str>,
}

impl<'a> PlayEvent<'a> {
    /// Parses and checks one message; the error says why it was rejected.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(format!(
                "oversized: {} bytes (limit {MAX_MESSAGE_BYTES})",
                bytes.len()
            ));
        }
        let event: PlayEvent<'a> =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON event: {e}"))?;
        event.check()?;
        Ok(event)
    }

    /// Rules the types alone do not enforce.
    pub fn check(&self) -> Result<(), String> {
        if self.ms_played < 0 {
            return Err(format!("ms_played is negative ({})", self.ms_played));
        }
        if self.track_duration_ms <= 0 {
            return Err(format!(
                "track_duration_ms must be positive ({})",
                self.track_duration_ms
            ));
        }
        for (name, value) in [
            ("user_id", &self.user_id),
            ("track_id", &self.track_id),
            ("session_id", &self.session_id),
        ] {
            if value.is_empty() {
                return Err(format!("{name} is empty"));
            }
        }
        Ok(())
    }
}

mod ts_millis {
    use super::*;

    pub fn serialize<S: serde::Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                serde::de::Error::custom(format!("ts \"{text}\" is not an RFC 3339 time: {e}"))
            })
    }
}
