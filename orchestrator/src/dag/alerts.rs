//! `on_failure`, `on_success` and `on_retry` in `[dag]` and `[[task]]`: the notify
//! connections (webhooks, email) that hear of a run's or a task's outcome.

use serde::{Deserialize, Serialize};
use toml::de::DeTable;

use super::walk::Walker;
use crate::registry::Registry;

/// Who hears of what: connection names by event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alerts {
    /// Told when the run (or task) failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<String>,
    /// Told when it succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_success: Vec<String>,
    /// Told when a task's attempt failed and it will be tried again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_retry: Vec<String>,
}

impl Alerts {
    /// Whether nobody hears of anything.
    pub fn is_empty(&self) -> bool {
        self.on_failure.is_empty() && self.on_success.is_empty() && self.on_retry.is_empty()
    }

    /// The JSON the state store keeps, or `None` when there is nothing to keep.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        (!self.is_empty()).then(|| serde_json::to_value(self).expect("lists of strings serialise"))
    }
}

/// Reads the three keys of `t`; a connection the configuration lacks is reported at
/// its place, as for a task's `connection` param.
pub(super) fn read(
    w: &mut Walker<'_>,
    t: &DeTable<'_>,
    section: &str,
    registry: &Registry,
) -> Alerts {
    let mut read_one = |key: &str| -> Vec<String> {
        let names = w.strings(t, key, section).unwrap_or_default();
        for (name, span) in &names {
            if let Some(defined) = registry.connection_names()
                && !defined.contains(name)
            {
                let listed: Vec<&str> = defined.iter().map(String::as_str).collect();
                w.error(
                    span.clone(),
                    format!(
                        "`{key}` in {section} names no connection `{name}` (defined: {})",
                        if listed.is_empty() {
                            "none".into()
                        } else {
                            listed.join(", ")
                        }
                    ),
                );
            }
        }
        names.into_iter().map(|n| n.0).collect()
    };
    Alerts {
        on_failure: read_one("on_failure"),
        on_success: read_one("on_success"),
        on_retry: read_one("on_retry"),
    }
}
