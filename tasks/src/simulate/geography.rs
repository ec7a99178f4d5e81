//! Where listeners are and when they listen: countries with their region, cities,
//! IANA timezone and share of listeners, and a daily activity curve by local hour.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

/// A country listeners live in, which sets their region, cities and local time of day.
pub struct Country {
    /// The ISO 3166-1 alpha-2 code play events carry.
    pub code: &'static str,
    /// The wider region, so analytics can group countries.
    pub region: &'static str,
    /// The zone its listeners' local hour is read in, which drives when they listen.
    pub timezone: Tz,
    /// Relative share of listeners.
    pub weight: f64,
    /// The cities its listeners are placed in.
    pub cities: &'static [&'static str],
}

/// Every country the simulator places listeners in, with its share of them.
pub const COUNTRIES: &[Country] = &[
    Country {
        code: "US",
        region: "North America",
        timezone: Tz::America__New_York,
        weight: 22.0,
        cities: &["New York", "Los Angeles", "Chicago", "Houston", "Atlanta"],
    },
    Country {
        code: "CA",
        region: "North America",
        timezone: Tz::America__Toronto,
        weight: 4.0,
        cities: &["Toronto", "Montreal", "Vancouver"],
    },
    Country {
        code: "MX",
        region: "Latin America",
        timezone: Tz::America__Mexico_City,
        weight: 7.0,
        cities: &["Mexico City", "Guadalajara", "Monterrey"],
    },
    Country {
        code: "BR",
        region: "Latin America",
        timezone: Tz::America__Sao_Paulo,
        weight: 9.0,
        cities: &["São Paulo", "Rio de Janeiro", "Belo Horizonte"],
    },
    Country {
        code: "AR",
        region: "Latin America",
        timezone: Tz::America__Argentina__Buenos_Aires,
        weight: 3.0,
        cities: &["Buenos Aires", "Córdoba", "Rosario"],
    },
    Country {
        code: "GB",
        region: "Europe",
        timezone: Tz::Europe__London,
        weight: 7.0,
        cities: &["London", "Manchester", "Glasgow"],
    },
    Country {
        code: "DE",
        region: "Europe",
        timezone: Tz::Europe__Berlin,
        weight: 6.0,
        cities: &["Berlin", "Hamburg", "Munich", "Cologne"],
    },
    Country {
        code: "FR",
        region: "Europe",
        timezone: Tz::Europe__Paris,
        weight: 5.0,
        cities: &["Paris", "Lyon", "Marseille"],
    },
    Country {
        code: "ES",
        region: "Europe",
        timezone: Tz::Europe__Madrid,
        weight: 4.0,
        cities: &["Madrid", "Barcelona", "Valencia"],
    },
    Country {
        code: "SE",
        region: "Europe",
        timezone: Tz::Europe__Stockholm,
        weight: 2.0,
        cities: &["Stockholm", "Gothenburg", "Malmö"],
    },
    Country {
        code: "NL",
        region: "Europe",
        timezone: Tz::Europe__Amsterdam,
        weight: 2.0,
        cities: &["Amsterdam", "Rotterdam", "Utrecht"],
    },
    Country {
        code: "IN",
        region: "Asia Pacific",
        timezone: Tz::Asia__Kolkata,
        weight: 8.0,
        cities: &["Mumbai", "Delhi", "Bengaluru", "Chennai"],
    },
    Country {
        code: "JP",
        region: "Asia Pacific",
        timezone: Tz::Asia__Tokyo,
        weight: 4.0,
        cities: &["Tokyo", "Osaka", "Nagoya"],
    },
    Country {
        code: "AU",
        region: "Asia Pacific",
        timezone: Tz::Australia__Sydney,
        weight: 3.0,
        cities: &["Sydney", "Melbourne", "Brisbane"],
    },
    Country {
        code: "ID",
        region: "Asia Pacific",
        timezone: Tz::Asia__Jakarta,
        weight: 5.0,
        cities: &["Jakarta", "Surabaya", "Bandung"],
    },
    Country {
        code: "ZA",
        region: "Middle East & Africa",
        timezone: Tz::Africa__Johannesburg,
        weight: 2.0,
        cities: &["Johannesburg", "Cape Town", "Durban"],
    },
    Country {
        code: "NG",
        region: "Middle East & Africa",
        timezone: Tz::Africa__Lagos,
        weight: 2.0,
        cities: &["Lagos", "Abuja", "Ibadan"],
    },
    Country {
        code: "AE",
        region: "Middle East & Africa",
        timezone: Tz::Asia__Dubai,
        weight: 1.5,
        cities: &["Dubai", "Abu Dhabi", "Sharjah"],
    },
];

/// Relative listening by local hour: quiet before dawn, a morning commute bump,
/// the day's peak in the evening.
pub const ACTIVITY_BY_LOCAL_HOUR: [f64; 24] = [
    0.35, 0.22, 0.13, 0.08, 0.07, 0.10, 0.25, 0.55, 0.80, 0.75, 0.70, 0.72, //
    0.80, 0.78, 0.75, 0.78, 0.85, 0.95, 1.00, 1.00, 0.95, 0.85, 0.70, 0.50,
];

/// The local hour of `t` in a country.
pub fn local_hour(country: &Country, t: DateTime<Utc>) -> usize {
    t.with_timezone(&country.timezone).hour() as usize
}
