//! Turns a seed into a stream of plausible plays: Zipf-like track popularity,
//! listening that follows each country's local time of day, sessions that keep a
//! listener's device, and skips decided by how long a track played.

use std::borrow::Cow;

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp, Zipf};
use uuid::Uuid;

use super::catalog::{Catalog, Listener, listeners};
use super::geography::{ACTIVITY_BY_LOCAL_HOUR, COUNTRIES, local_hour};
use crate::play::PlayEvent;

/// What the simulated world looks like.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Seeds every random choice: the same seed gives the same catalog and listeners,
    /// and with the same `start` the same events.
    pub seed: u64,
    /// How many artists the catalog has; each gets 1 to 3 albums.
    pub artists: usize,
    /// About how many listeners there are, spread over the countries by weight.
    pub listeners: usize,
    /// The Zipf exponent of track popularity (about 1 for real services).
    pub popularity_exponent: f64,
    /// The first event's time.
    pub start: DateTime<Utc>,
    /// Simulated events per simulated second: event i is stamped
    /// `start + i / events_per_second`. Equal to the send rate in real time.
    pub events_per_second: f64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            artists: 2_000,
            listeners: 50_000,
            popularity_exponent: 1.07,
            start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            events_per_second: 1_000.0,
        }
    }
}

/// A listener's running session.
#[derive(Default)]
struct Session {
    id: String,
    last_end_ms: i64,
    device: usize,
    shuffle: bool,
    last_reason_end: &'static str,
}

const SESSION_GAP_MS: i64 = 30 * 60 * 1000;

/// Produces play events one at a time from a [`WorldConfig`], deterministically.
pub struct Generator {
    catalog: Catalog,
    listeners: Vec<Listener>,
    /// Listener index ranges per country (listeners are grouped by country).
    by_country: Vec<(usize, usize)>,
    sessions: Vec<Session>,
    rng: SmallRng,
    zipf: Zipf<f64>,
    skip_seconds: Exp<f64>,
    start_ms: i64,
    ms_per_event: f64,
    produced: u64,
    /// Cumulative country weights for the current simulated minute.
    minute: i64,
    cumulative: Vec<f64>,
}

impl Generator {
    /// A generator whose catalog, listeners and events all follow from `config`.
    pub fn new(config: &WorldConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let catalog = Catalog::generate(&mut rng, config.artists);
        let listeners = listeners(&mut rng, config.listeners);
        let mut by_country = vec![(0, 0); COUNTRIES.len()];
        for (i, l) in listeners.iter().enumerate() {
            let r = &mut by_country[l.country];
            if r.1 == 0 {
                r.0 = i;
            }
            r.1 = i + 1;
        }
        let sessions = listeners.iter().map(|_| Session::default()).collect();
        // The world follows from the seed alone; the stream of events from the seed and
        // the start, so a restarted simulator (a new start) goes on with new event ids
        // while the same seed and start give the same events.
        let start_us = config.start.timestamp_micros() as u64;
        let rng =
            SmallRng::seed_from_u64(config.seed ^ start_us.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let zipf = Zipf::new(catalog.tracks.len() as f64, config.popularity_exponent)
            .expect("a valid Zipf law");
        Self {
            catalog,
            listeners,
            by_country,
            sessions,
            rng,
            zipf,
            skip_seconds: Exp::new(1.0 / 25.0).expect("a positive rate"),
            start_ms: config.start.timestamp_millis(),
            ms_per_event: 1000.0 / config.events_per_second,
            produced: 0,
            minute: i64::MIN,
            cumulative: Vec::new(),
        }
    }

    /// How many tracks the catalog has, for checks of the popularity curve.
    pub fn tracks(&self) -> usize {
        self.catalog.tracks.len()
    }

    /// How many events it has produced, which also sets the next event's time.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    fn pick_country(&mut self, ts_ms: i64) -> usize {
        let minute = ts_ms.div_euclid(60_000);
        if minute != self.minute {
            let t = Utc.timestamp_millis_opt(ts_ms).single().unwrap_or_default();
            let mut sum = 0.0;
            self.cumulative = COUNTRIES
                .iter()
                .map(|c| {
                    sum += c.weight * ACTIVITY_BY_LOCAL_HOUR[local_hour(c, t)];
                    sum
                })
                .collect();
            self.minute = minute;
        }
        let x = self.rng.random::<f64>() * self.cumulative[self.cumulative.len() - 1];
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(COUNTRIES.len() - 1)
    }

    /// The next play. It borrows the generator's catalog; serialise it before the next call.
    pub fn next_event(&mut self) -> PlayEvent<'_> {
        let ts_ms = self.start_ms + (self.produced as f64 * self.ms_per_event) as i64;
        self.produced += 1;
        let country = self.pick_country(ts_ms);
        let (lo, hi) = self.by_country[country];
        let li = self.rng.random_range(lo..hi);
        let listener = &self.listeners[li];
        let session = &mut self.sessions[li];
        let rng = &mut self.rng;

        let reason_start = if session.id.is_empty() || ts_ms - session.last_end_ms > SESSION_GAP_MS
        {
            session.id = Uuid::from_bytes(rng.random()).hyphenated().to_string();
            session.device = if listener.devices.len() > 1 && rng.random_bool(0.2) {
                1
            } else {
                0
            };
            session.shuffle = rng.random_bool(0.35);
            ["clickrow", "playbtn", "appload"][rng.random_range(0..3)]
        } else {
            session.last_reason_end
        };
        let track_index = (self.zipf.sample(rng) as usize)
            .saturating_sub(1)
            .min(self.catalog.tracks.len() - 1);
        let track = &self.catalog.tracks[track_index];
        let artist = &self.catalog.artists[track.artist];
        let device = listener.devices[session.device];

        let skip_p =
            0.16 + if listener.subscription == "free" {
                0.10
            } else {
                0.0
            } + if session.shuffle { 0.08 } else { 0.0 };
        let (ms_played, reason_end) = if rng.random_bool(skip_p) {
            let played = (self.skip_seconds.sample(rng) * 1000.0) as i64;
            (played.clamp(500, track.duration_ms - 1000), "fwdbtn")
        } else if rng.random_bool(0.03) {
            (
                (track.duration_ms as f64 * rng.random_range(0.3..0.9)) as i64,
                "endplay",
            )
        } else {
            (track.duration_ms, "trackdone")
        };
        let offline =
            matches!(device.device_type, "smartphone" | "tablet") && rng.random_bool(0.02);
        let event_id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        session.last_end_ms = ts_ms;
        session.last_reason_end = if reason_end == "endplay" {
            "playbtn"
        } else {
            reason_end
        };

        let c = &COUNTRIES[country];
        PlayEvent {
            event_id,
            ts: Utc.timestamp_millis_opt(ts_ms).single().unwrap_or_default(),
            user_id: Cow::Borrowed(&listener.user_id),
            session_id: Cow::Borrowed(&session.id),
            track_id: Cow::Borrowed(&track.track_id),
            track_name: Cow::Borrowed(&track.name),
            artist_id: Cow::Borrowed(&artist.artist_id),
            artist_name: Cow::Borrowed(&artist.name),
            album_name: Cow::Borrowed(&track.album_name),
            ms_played,
            track_duration_ms: track.duration_ms,
            reason_start: Cow::Borrowed(reason_start),
            reason_end: Cow::Borrowed(reason_end),
            // Spotify counts a play under 30 seconds that the listener cut short as a skip.
            skipped: reason_end == "fwdbtn" && ms_played < 30_000,
            shuffle: session.shuffle,
            offline,
            platform: Cow::Borrowed(device.platform),
            device_type: Cow::Borrowed(device.device_type),
            conn_country: Cow::Borrowed(c.code),
            region: Cow::Borrowed(c.region),
            city: Cow::Borrowed(listener.city),
            subscription: Cow::Borrowed(listener.subscription),
            extras: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn small_world(seed: u64) -> WorldConfig {
        WorldConfig {
            seed,
            artists: 300,
            listeners: 5_000,
            events_per_second: 2.0,
            ..WorldConfig::default()
        }
    }

    fn json(g: &mut Generator, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| serde_json::to_string(&g.next_event()).unwrap())
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_events_and_another_seed_does_not() {
        let a = json(&mut Generator::new(&small_world(7)), 500);
        let b = json(&mut Generator::new(&small_world(7)), 500);
        let c = json(&mut Generator::new(&small_world(8)), 500);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_restart_goes_on_with_new_event_ids_in_the_same_world() {
        let ids = |start: DateTime<Utc>| -> Vec<String> {
            let mut g = Generator::new(&WorldConfig {
                start,
                ..small_world(7)
            });
            (0..2000)
                .map(|_| g.next_event().event_id.to_string())
                .collect()
        };
        let first = Utc.with_ymd_and_hms(2026, 5, 1, 17, 0, 0).unwrap();
        let restart = first + chrono::Duration::seconds(90);
        let before: std::collections::HashSet<String> = ids(first).into_iter().collect();
        assert!(
            ids(restart).iter().all(|id| !before.contains(id)),
            "a restart re-used an event id"
        );
        assert_eq!(
            ids(first),
            ids(first),
            "the same seed and start give the same events"
        );
    }

    #[test]
    fn track_popularity_is_zipf_like() {
        let mut g = Generator::new(&small_world(1));
        let mut plays: HashMap<String, u64> = HashMap::new();
        for _ in 0..200_000 {
            *plays
                .entry(g.next_event().track_id.into_owned())
                .or_default() += 1;
        }
        let mut counts: Vec<u64> = plays.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // Under Zipf with s ~ 1, the 1st track gets about twice the 2nd and ten
        // times the 10th; the top 1 % of tracks draw a large share of all plays.
        let ratio_2 = counts[0] as f64 / counts[1] as f64;
        let ratio_10 = counts[0] as f64 / counts[9] as f64;
        assert!((1.6..2.8).contains(&ratio_2), "1st/2nd = {ratio_2}");
        assert!((6.0..16.0).contains(&ratio_10), "1st/10th = {ratio_10}");
        let top_1pct: u64 = counts.iter().take(g.tracks() / 100).sum();
        assert!(
            top_1pct as f64 / 200_000.0 > 0.3,
            "top 1 % of tracks: {top_1pct}"
        );
    }

    #[test]
    fn listening_follows_the_local_time_of_day() {
        // Two simulated days at 2 events per simulated second.
        let mut g = Generator::new(&small_world(3));
        let mut by_local_hour = [0u64; 24];
        for _ in 0..(2 * 86_400 * 2) {
            let e = g.next_event();
            let country = COUNTRIES.iter().find(|c| c.code == e.conn_country).unwrap();
            by_local_hour[local_hour(country, e.ts)] += 1;
        }
        let evening = by_local_hour[18] + by_local_hour[19];
        let night = by_local_hour[3] + by_local_hour[4];
        assert!(
            evening as f64 > 5.0 * night as f64,
            "evening {evening} vs night {night}"
        );
    }

    #[test]
    fn a_listener_keeps_a_device_and_a_platform_within_a_session() {
        let mut g = Generator::new(&small_world(5));
        let mut seen: HashMap<String, (String, String)> = HashMap::new();
        for _ in 0..50_000 {
            let e = g.next_event();
            let device = (e.device_type.to_string(), e.platform.to_string());
            let before = seen
                .entry(e.session_id.to_string())
                .or_insert_with(|| device.clone());
            assert_eq!(*before, device);
            assert!(e.ms_played <= e.track_duration_ms);
            assert_eq!(e.skipped, e.reason_end == "fwdbtn" && e.ms_played < 30_000);
        }
    }

    #[test]
    fn events_round_trip_through_json() {
        let mut g = Generator::new(&small_world(9));
        for _ in 0..100 {
            let e = g.next_event().clone();
            let text = serde_json::to_vec(&e).unwrap();
            assert_eq!(PlayEvent::parse(&text).unwrap(), e);
        }
    }
}
