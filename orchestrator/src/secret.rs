//! Values that must never reach a log, a page or `setlist config show`: tokens,
//! passwords and URLs that carry one. `Debug`, `Display` and `Serialize` print them
//! redacted; only [`Secret::expose`] gives the value.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string (an API token, a password).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the value is empty (an unset variable).
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// A database URL whose password, if any, is a secret: it prints as
/// `postgres://user:***@host/db`.
#[derive(Clone)]
pub struct DbUrl(Secret);

impl DbUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self(Secret::new(url))
    }

    /// The URL with its password, to connect with.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL without its password, for messages.
    pub fn redacted(&self) -> String {
        redact(self.expose())
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DbUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DbUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(DbUrl::new)
    }
}

/// `url` with the password of its user-info replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{}{user}{hidden}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        let url = DbUrl::new("postgres://me:secret@host/db");
        assert_eq!(url.to_string(), "postgres://me:***@host/db");
        assert_eq!(format!("{url:?}"), "\"postgres://me:***@host/db\"");
        assert_eq!(url.expose(), "postgres://me:secret@host/db");
        assert_eq!(redact("postgres://me@host/db"), "postgres://me@host/db");
        let token = Secret::new("t0ken");
        assert_eq!(format!("{token:?}"), "\"[redacted]\"");
        assert_eq!(serde_json::to_string(&token).unwrap(), "\"[redacted]\"");
    }
}
