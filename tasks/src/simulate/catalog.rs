//! The music catalog (artists, albums, tracks) and the listeners, both built from a
//! seed: names come from the `fake` crate, everything else from the seeded RNG.

use fake::Fake;
use fake::faker::lorem::en::Words;
use fake::faker::name::en::{FirstName, LastName};
use rand::RngExt;
use rand::seq::SliceRandom;

use super::geography::COUNTRIES;

/// The genres an artist is drawn from; the vocabulary of the `genre` field in play events.
pub const GENRES: &[&str] = &[
    "pop",
    "hip-hop",
    "rock",
    "latin",
    "electronic",
    "r&b",
    "indie",
    "k-pop",
    "country",
    "afrobeats",
    "jazz",
    "classical",
];

/// A song a listener can play; each play event carries one.
pub struct Track {
    /// The stable id play events and the warehouse join on.
    pub track_id: String,
    /// The title, as play events carry it.
    pub name: String,
    /// Index of its artist in [`Catalog::artists`].
    pub artist: usize,
    /// The album it is on, as play events carry it.
    pub album_name: String,
    /// How long it runs, which bounds how long a play of it lasts.
    pub duration_ms: i64,
}

/// A performer whose tracks make up the catalog.
pub struct Artist {
    /// The stable id play events and the warehouse join on.
    pub artist_id: String,
    /// The name, as play events carry it.
    pub name: String,
    /// One of [`GENRES`], so analytics can group plays by genre.
    pub genre: &'static str,
}

/// One of a listener's devices; its platform never changes.
#[derive(Clone, Copy)]
pub struct Device {
    /// The kind of device (smartphone, car, ...), as play events carry it.
    pub device_type: &'static str,
    /// The operating system or app it runs, as play events carry it.
    pub platform: &'static str,
}

/// A simulated user whose plays make up the event stream.
pub struct Listener {
    /// The stable id play events and the warehouse join on.
    pub user_id: String,
    /// Index of their country in [`super::geography::COUNTRIES`], which sets their timezone.
    pub country: usize,
    /// The city they listen from, one of their country's.
    pub city: &'static str,
    /// Their plan (premium, free, family, student), as play events carry it.
    pub subscription: &'static str,
    /// The first is the one used most.
    pub devices: Vec<Device>,
}

/// Every artist and track the simulated listeners can play.
pub struct Catalog {
    /// Every artist, indexed by [`Track::artist`].
    pub artists: Vec<Artist>,
    /// Ordered by popularity: index 0 is the most played.
    pub tracks: Vec<Track>,
}

fn title(words: Vec<String>) -> String {
    words
        .iter()
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn hex_id(rng: &mut impl RngExt, prefix: &str) -> String {
    format!("{prefix}{:016x}", rng.random::<u64>())
}

impl Catalog {
    /// A catalog of `artists` artists and their tracks; the same RNG state gives the same one.
    pub fn generate(rng: &mut impl RngExt, artists: usize) -> Self {
        let mut all_artists = Vec::with_capacity(artists);
        let mut tracks = Vec::new();
        for a in 0..artists {
            let name = if rng.random_bool(0.5) {
                format!(
                    "{} {}",
                    FirstName().fake_with_rng::<String, _>(rng),
                    LastName().fake_with_rng::<String, _>(rng)
                )
            } else {
                format!("The {}", title(Words(1..3).fake_with_rng(rng)))
            };
            all_artists.push(Artist {
                artist_id: hex_id(rng, "ar"),
                name,
                genre: GENRES[rng.random_range(0..GENRES.len())],
            });
            for _ in 0..rng.random_range(1..=3) {
                let album_name = title(Words(1..4).fake_with_rng(rng));
                for _ in 0..rng.random_range(6..=12) {
                    // Most songs run 2.5 to 4 minutes; a few are short or long.
                    let minutes: f64 = 2.0
                        + rng.random::<f64>() * 2.0
                        + rng.random::<f64>() * rng.random::<f64>() * 3.0;
                    tracks.push(Track {
                        track_id: hex_id(rng, "tr"),
                        name: title(Words(1..5).fake_with_rng(rng)),
                        artist: a,
                        album_name: album_name.clone(),
                        duration_ms: (minutes * 60_000.0) as i64,
                    });
                }
            }
        }
        // Popularity order is independent of artist order.
        tracks.shuffle(rng);
        Self {
            artists: all_artists,
            tracks,
        }
    }
}

const DEVICES: &[(f64, &str, &[&str])] = &[
    (0.55, "smartphone", &["iOS", "Android"]),
    (0.15, "desktop", &["Windows", "macOS", "Linux"]),
    (0.07, "web", &["web_player"]),
    (0.05, "tablet", &["iOS", "Android"]),
    (0.08, "smart_speaker", &["cast"]),
    (0.04, "tv", &["Android TV", "tvOS"]),
    (0.06, "car", &["Android Auto", "CarPlay"]),
];

const TIERS: &[(f64, &str)] = &[
    (0.45, "premium"),
    (0.38, "free"),
    (0.11, "family"),
    (0.06, "student"),
];

fn pick<T: Copy>(rng: &mut impl RngExt, table: &[(f64, T)]) -> T {
    let mut x = rng.random::<f64>() * table.iter().map(|t| t.0).sum::<f64>();
    for (w, item) in table {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    table[table.len() - 1].1
}

fn device(rng: &mut impl RngExt) -> Device {
    let mut x = rng.random::<f64>();
    for (w, device_type, platforms) in DEVICES {
        if x < *w {
            return Device {
                device_type,
                platform: platforms[rng.random_range(0..platforms.len())],
            };
        }
        x -= w;
    }
    Device {
        device_type: "smartphone",
        platform: "Android",
    }
}

/// Listeners spread over countries by their weights, grouped by country.
pub fn listeners(rng: &mut impl RngExt, count: usize) -> Vec<Listener> {
    let total: f64 = COUNTRIES.iter().map(|c| c.weight).sum();
    let mut out = Vec::with_capacity(count);
    for (ci, country) in COUNTRIES.iter().enumerate() {
        let n = ((country.weight / total) * count as f64).round().max(1.0) as usize;
        for _ in 0..n {
            let mut devices = vec![device(rng)];
            if rng.random_bool(0.35) {
                devices.push(device(rng));
            }
            out.push(Listener {
                user_id: hex_id(rng, "u"),
                country: ci,
                city: country.cities[rng.random_range(0..country.cities.len())],
                subscription: pick(rng, TIERS),
                devices,
            });
        }
    }
    out
}
