//! Waits (Airflow's sensors): a task that checks a condition, and while it is unmet
//! hands its worker slot back and is claimed again at its next poke, as Airflow's
//! reschedule mode does. Between pokes the task instance is `waiting`; its attempt
//! (one per try, with one log) counts the pokes. A wait fails once `timeout` has
//! passed since its try's first poke.
//!
//! Each wait kind is a [`Check`] in a [`Wait`], which adds the two params every wait
//! has: `poke_interval` (default 30 s) and `timeout` (default 24 h):
//! `wait_object` (a key or a prefix in the lake or any store), `wait_sql` (a query's
//! first cell is true), `wait_http` (an answer with an expected status and a true
//! `response_check`), `wait_run` (another DAG's run or task at the same logical date
//! succeeded) and `wait_until` (a time, or an offset from the data interval's end).

mod object;
mod run;
mod sql;
mod until;

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use orchestrator::{Fatal, ParamError, PokeAgain, Task, TaskConfig, TaskContext};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use object::WaitObject;
pub use run::WaitRun;
pub use sql::WaitSql;
pub use until::WaitUntil;

/// What one poke found.
#[derive(Debug)]
pub enum Poll {
    /// The condition holds; this is the task's output.
    Met(Value),
    /// Not yet; what was seen, for the log.
    NotYet(String),
}

/// A condition a wait pokes.
#[async_trait]
pub trait Check: DeserializeOwned + Send + Sync + 'static {
    /// Looks once. An error fails the attempt (and is retried as any failure is).
    async fn check(&self, ctx: &TaskContext) -> anyhow::Result<Poll>;

    /// Checks that serde cannot express.
    fn validate(&self) -> Result<(), ParamError> {
        Ok(())
    }

    /// The named connections the params refer to (see [`TaskConfig::connections`]).
    fn connections(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// A wait: a condition and how often and how long to poke it.
#[derive(Debug)]
pub struct Wait<C> {
    /// What is waited for.
    pub condition: C,
    /// The time between pokes.
    pub poke_interval: Duration,
    /// How long the wait may last in all, from the first poke of its try.
    pub timeout: Duration,
}

const DEFAULT_POKE_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// `poke_interval` and `timeout` are taken out of the params; the rest are the
/// condition's, which refuses any it does not know.
impl<'de, C: DeserializeOwned> Deserialize<'de> for Wait<C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::deserialize(d)?;
        let mut duration = |key: &str, default: Duration| -> Result<Duration, D::Error> {
            match map.remove(key) {
                None => Ok(default),
                Some(Value::String(s)) => humantime::parse_duration(&s).map_err(|e| {
                    D::Error::custom(format!(
                        "{key}: {s:?} is no duration ({e}); write \"30s\", \"5m\", \"1h\""
                    ))
                }),
                Some(other) => Err(D::Error::custom(format!(
                    "{key}: expected a duration such as \"30s\", found {other}"
                ))),
            }
        };
        let poke_interval = duration("poke_interval", DEFAULT_POKE_INTERVAL)?;
        let timeout = duration("timeout", DEFAULT_TIMEOUT)?;
        let condition = serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                D::Error::custom(inner)
            } else {
                D::Error::custom(format!("{path}: {inner}"))
            }
        })?;
        Ok(Wait {
            condition,
            poke_interval,
            timeout,
        })
    }
}

impl<C: Check> TaskConfig for Wait<C> {
    fn validate(&self) -> Result<(), ParamError> {
        if self.poke_interval.is_zero() {
            return Err(ParamError::at("poke_interval", "must be longer than zero"));
        }
        if self.timeout < self.poke_interval {
            return Err(ParamError::at(
                "timeout",
                "must be at least the poke_interval",
            ));
        }
        self.condition.validate()
    }

    fn connections(&self) -> Vec<(&'static str, String)> {
        self.condition.connections()
    }
}

#[async_trait]
impl<C: Check> Task for Wait<C> {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        match self.condition.check(ctx).await? {
            Poll::Met(output) => Ok(output),
            Poll::NotYet(what) => {
                let now = Utc::now();
                let waited = (now - ctx.try_started_at).to_std().unwrap_or_default();
                if waited >= self.timeout {
                    // Another try would wait as long again for the same thing.
                    return Err(Fatal(format!(
                        "gave up after waiting {} (timeout {}): {what}",
                        humantime::format_duration(Duration::from_secs(waited.as_secs())),
                        humantime::format_duration(self.timeout)
                    ))
                    .into());
                }
                // The last poke comes at the timeout, not after it.
                let next = self.poke_interval.min(self.timeout - waited);
                Err(PokeAgain {
                    at: now + next,
                    what,
                }
                .into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Wait;
    use crate::wait::WaitUntil;

    #[test]
    fn a_wait_takes_its_two_params_and_leaves_the_rest_to_its_condition() {
        let w: Wait<WaitUntil> =
            serde_json::from_value(serde_json::json!({ "delta": "5m", "poke_interval": "10s" }))
                .unwrap();
        assert_eq!(w.poke_interval, Duration::from_secs(10));
        assert_eq!(w.timeout, Duration::from_secs(86400));
        let e = serde_json::from_value::<Wait<WaitUntil>>(
            serde_json::json!({ "delta": "5m", "pokes": 3 }),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `pokes`"), "{e}");
        let e = serde_json::from_value::<Wait<WaitUntil>>(
            serde_json::json!({ "poke_interval": "soon" }),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("poke_interval: \"soon\" is no duration"), "{e}");
    }
}
