//! The play event: one JSON object per play on the topic, keyed by user_id. Field
//! names follow Spotify's streaming-history export where one exists. See
//! docs/play-event.md for the contract.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Messages larger than this go to the dead-letter prefix unread.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The kind of a play field: how it is typed in Rust, in Arrow (Parquet) and in the
/// warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A UUID, stored as its hyphenated lower-case text.
    Uuid,
    /// A UTC time at millisecond precision.
    Ts,
    /// Text.
    Str,
    /// A 64-bit integer.
    I64,
    /// true or false.
    Bool,
}

/// One field's value, borrowed from the event, for the column writers.
#[derive(Debug, Clone, Copy)]
pub enum FieldValue<'e> {
    /// A UUID.
    Uuid(Uuid),
    /// Milliseconds since the Unix epoch.
    Ts(i64),
    /// Text.
    Str(&'e str),
    /// An integer.
    I64(i64),
    /// A switch.
    Bool(bool),
}

/// Declares the play event once: the struct (with its serde attributes), the list of its
/// fields with their kinds, and their values in that order. The raw Parquet schema
/// (`raw::parquet`), the bronze table (`bronze`) and Snowflake's COPY follow from
/// [`PLAY_FIELDS`]. Adding a field is one line here (see docs/play-event.md).
macro_rules! play_event {
    ($($(#[$doc:meta])* $name:ident: $ty:ty as $kind:ident),* $(,)?) => {
        /// One play. Strings borrow where they can: the simulator lends them from its
        /// catalog, the lander from the message buffer.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct PlayEvent<'a> {
            $($(#[$doc])* pub $name: $ty,)*
            /// Fields this version does not know, kept as one JSON object (a newer
            /// producer's additions); `None` when there were none.
            #[serde(skip)]
            pub extras: Option<String>,
        }

        /// The event's fields in order, with their kinds.
        pub const PLAY_FIELDS: &[(&str, FieldKind)] = &[$((stringify!($name), FieldKind::$kind)),*];

        impl PlayEvent<'_> {
            /// The fields' values, in [`PLAY_FIELDS`] order.
            pub fn values(&self) -> [FieldValue<'_>; PLAY_FIELDS.len()] {
                [$(play_event!(@value $kind, self.$name)),*]
            }
        }
    };
    (@value Uuid, $e:expr) => { FieldValue::Uuid($e) };
    (@value Ts, $e:expr) => { FieldValue::Ts($e.timestamp_millis()) };
    (@value Str, $e:expr) => { FieldValue::Str(&$e) };
    (@value I64, $e:expr) => { FieldValue::I64($e) };
    (@value Bool, $e:expr) => { FieldValue::Bool($e) };
}
play_event! {
    /// The play's unique id, the key every de-duplication uses.
    event_id: Uuid as Uuid,
    /// When the play ended, UTC, millisecond precision.
    #[serde(with = "ts_millis")]
    ts: DateTime<Utc> as Ts,
    /// The listener; also the message key, so a listener's plays stay in order.
    #[serde(borrow)]
    user_id: Cow<'a, str> as Str,
    /// The listening session (plays under 30 minutes apart on one device).
    #[serde(borrow)]
    session_id: Cow<'a, str> as Str,
    /// The track's stable id, to join plays to the catalog.
    #[serde(borrow)]
    track_id: Cow<'a, str> as Str,
    /// The track's title, so reports need no catalog lookup.
    #[serde(borrow)]
    track_name: Cow<'a, str> as Str,
    /// The artist's stable id, to group plays by artist.
    #[serde(borrow)]
    artist_id: Cow<'a, str> as Str,
    /// The artist's name, so reports need no catalog lookup.
    #[serde(borrow)]
    artist_name: Cow<'a, str> as Str,
    /// The album the track is on, for album-level reports.
    #[serde(borrow)]
    album_name: Cow<'a, str> as Str,
    /// How long the track played, the measure of listening time.
    ms_played: i64 as I64,
    /// The track's length, to tell a full play from a partial one.
    track_duration_ms: i64 as I64,
    /// Why the play started (`clickrow`, `playbtn`, ...), as in Spotify's export.
    #[serde(borrow)]
    reason_start: Cow<'a, str> as Str,
    /// Why it ended (`trackdone`, `fwdbtn`, `endplay`), as in Spotify's export.
    #[serde(borrow)]
    reason_end: Cow<'a, str> as Str,
    /// Whether the listener cut it short within 30 seconds, for skip rates.
    skipped: bool as Bool,
    /// Whether the session plays in shuffle, which makes skips likelier.
    shuffle: bool as Bool,
    /// Whether it played from downloads, so offline listening can be counted.
    offline: bool as Bool,
    /// The device's operating system or app, for platform reports.
    #[serde(borrow)]
    platform: Cow<'a, str> as Str,
    /// The kind of device (smartphone, car, ...), for device reports.
    #[serde(borrow)]
    device_type: Cow<'a, str> as Str,
    /// ISO 3166-1 alpha-2.
    #[serde(borrow)]
    conn_country: Cow<'a, str> as Str,
    /// The wider region of `conn_country`, to group countries.
    #[serde(borrow)]
    region: Cow<'a, str> as Str,
    /// The listener's city, for local reports.
    #[serde(borrow)]
    city: Cow<'a, str> as Str,
    /// The listener's plan (premium, free, family, student), to compare tiers.
    #[serde(borrow)]
    subscription: Cow<'a, str> as Str,
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
        let event = match serde_json::from_slice::<PlayEvent<'a>>(bytes) {
            Ok(event) => event,
            // A field this version does not know: a newer producer. Keep the event
            // with the unknown fields aside, instead of dead-lettering every event
            // until the lander is upgraded. Only such events pay for a second parse.
            Err(e) if e.to_string().starts_with("unknown field") => Self::parse_with_extras(bytes)?,
            Err(e) => return Err(format!("invalid JSON event: {e}")),
        };
        event.check()?;
        Ok(event)
    }

    /// Parses an event that carries fields beyond [`PLAY_FIELDS`]: the known ones make
    /// the event, the others its `extras`.
    fn parse_with_extras(bytes: &[u8]) -> Result<PlayEvent<'static>, String> {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON event: {e}"))?;
        let mut extras = serde_json::Map::new();
        let unknown: Vec<String> = object
            .keys()
            .filter(|k| !PLAY_FIELDS.iter().any(|(name, _)| name == k))
            .cloned()
            .collect();
        for key in unknown {
            if let Some(v) = object.remove(&key) {
                extras.insert(key, v);
            }
        }
        let known = serde_json::Value::Object(object);
        let mut event: PlayEvent<'static> =
            PlayEvent::deserialize(known).map_err(|e| format!("invalid JSON event: {e}"))?;
        event.extras = Some(serde_json::Value::Object(extras).to_string());
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

    /// Writes the time as RFC 3339 with milliseconds and `Z`, the form the events carry.
    pub fn serialize<S: serde::Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    /// Reads an RFC 3339 time with any offset, as UTC.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                serde::de::Error::custom(format!("ts \"{text}\" is not an RFC 3339 time: {e}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> serde_json::Value {
        serde_json::json!({
            "event_id": "0b7e6bd5-1b4f-4a0a-9d0e-2f4f2f7a1c11", "ts": "2026-05-01T17:00:00.000Z",
            "user_id": "u1", "session_id": "s1", "track_id": "t1", "track_name": "Song",
            "artist_id": "a1", "artist_name": "Band", "album_name": "Album",
            "ms_played": 1000, "track_duration_ms": 2000, "reason_start": "clickrow",
            "reason_end": "trackdone", "skipped": false, "shuffle": false, "offline": false,
            "platform": "ios", "device_type": "smartphone", "conn_country": "SE",
            "region": "Europe", "city": "Stockholm", "subscription": "premium"
        })
    }

    #[test]
    fn every_field_of_the_struct_is_listed_once_in_order() {
        let names: Vec<&str> = PLAY_FIELDS.iter().map(|(n, _)| *n).collect();
        let json = event();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort();
        assert_eq!(sorted, sorted_keys);
        assert_eq!(names[0], "event_id");
        let bytes = serde_json::to_vec(&json).unwrap();
        let e = PlayEvent::parse(&bytes).unwrap();
        assert_eq!(e.values().len(), PLAY_FIELDS.len());
        assert!(e.extras.is_none());
    }

    #[test]
    fn fields_this_version_does_not_know_are_kept_not_fatal() {
        let mut json = event();
        json["podcast_episode"] = "e7".into();
        json["volume"] = 0.8.into();
        let bytes = serde_json::to_vec(&json).unwrap();
        let e = PlayEvent::parse(&bytes).unwrap();
        assert_eq!(e.user_id, "u1");
        let extras: serde_json::Value = serde_json::from_str(e.extras.as_deref().unwrap()).unwrap();
        assert_eq!(
            extras,
            serde_json::json!({"podcast_episode": "e7", "volume": 0.8})
        );
    }

    #[test]
    fn an_unknown_field_does_not_excuse_a_bad_known_one() {
        let mut json = event();
        json["podcast_episode"] = "e7".into();
        json["ms_played"] = "a lot".into();
        let bytes = serde_json::to_vec(&json).unwrap();
        let err = PlayEvent::parse(&bytes).unwrap_err();
        assert!(
            err.starts_with("invalid JSON event: invalid type: string \"a lot\""),
            "{err}"
        );
        json["ms_played"] = (-1).into();
        let bytes = serde_json::to_vec(&json).unwrap();
        assert_eq!(
            PlayEvent::parse(&bytes).unwrap_err(),
            "ms_played is negative (-1)"
        );
    }
}
