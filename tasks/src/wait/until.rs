//! `wait_until`: waits for a time: `delta` after the end of the run's data interval
//! (Airflow's TimeDeltaSensor), or `target_time` (DateTimeSensor), which a template
//! may compute (`"{{ data_interval_end }}"`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator::{ParamError, TaskContext};
use serde::Deserialize;
use serde_json::json;

use super::{Check, Poll};

/// The params of a `wait_until` wait (besides `poke_interval` and `timeout`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitUntil {
    /// How long after the data interval's end to wait for.
    #[serde(default, with = "humantime_serde")]
    pub delta: Option<Duration>,
    /// The time to wait for, RFC 3339.
    #[serde(default)]
    pub target_time: Option<DateTime<Utc>>,
}

impl WaitUntil {
    fn target(&self, ctx: &TaskContext) -> DateTime<Utc> {
        match (self.target_time, self.delta) {
            (Some(t), _) => t,
            (None, Some(d)) => ctx.data_interval_end + d,
            (None, None) => ctx.data_interval_end,
        }
    }
}

#[async_trait]
impl Check for WaitUntil {
    async fn check(&self, ctx: &TaskContext) -> anyhow::Result<Poll> {
        let target = self.target(ctx);
        let now = Utc::now();
        Ok(if now >= target {
            Poll::Met(json!({ "target_time": target }))
        } else {
            Poll::NotYet(format!("waiting until {}", target.to_rfc3339()))
        })
    }

    fn validate(&self) -> Result<(), ParamError> {
        if self.delta.is_some() && self.target_time.is_some() {
            return Err(ParamError::at(
                "delta",
                "give a `delta` or a `target_time`, not both",
            ));
        }
        Ok(())
    }
}
