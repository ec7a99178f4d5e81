//! When a task may start, given the states of its upstream tasks.

use serde::{Deserialize, Serialize};

/// A task's trigger rule, as in Airflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream succeeded (the default).
    #[default]
    AllSuccess,
    /// Every upstream finished, whatever its state.
    AllDone,
    /// At least one upstream failed; starts as soon as one does.
    OneFailed,
    /// At least one upstream succeeded; starts as soon as one does.
    OneSuccess,
    /// No upstream failed (skipped ones are fine).
    NoneFailed,
    /// No upstream failed and at least one succeeded: the join after a branch.
    NoneFailedMinOneSuccess,
    /// Every upstream failed (or could not run because its own upstream failed).
    AllFailed,
    /// Every upstream finished and none was skipped.
    NoneSkipped,
    /// Every upstream was skipped.
    AllSkipped,
    /// Runs at once, whatever its upstream tasks do (they only order the graph).
    Always,
}

impl TriggerRule {
    /// The names DAG files may write in `trigger_rule`, for error messages that list them.
    pub const NAMES: [&'static str; 10] = [
        "all_success",
        "all_done",
        "one_failed",
        "one_success",
        "none_failed",
        "none_failed_min_one_success",
        "all_failed",
        "none_skipped",
        "all_skipped",
        "always",
    ];

    /// The rule a DAG file names, or `None` so the loader can report a bad name.
    pub fn parse(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
    }

    /// The name DAG files, the state store and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllDone => "all_done",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::NoneSkipped => "none_skipped",
            TriggerRule::AllSkipped => "all_skipped",
            TriggerRule::Always => "always",
        }
    }

    /// What to do with a task that waits on `up`.
    pub fn decide(self, up: UpstreamCounts) -> Decision {
        let failed = up.failed + up.upstream_failed;
        let done = up.success + failed + up.skipped;
        let all_done = done == up.total;
        match self {
            TriggerRule::AllSuccess => {
                if failed > 0 {
                    Decision::UpstreamFailed
                } else if up.skipped > 0 {
                    Decision::Skip
                } else if all_done {
                    Decision::Ready
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::AllDone => {
                if all_done {
                    Decision::Ready
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::OneFailed => {
                if failed > 0 {
                    Decision::Ready
                } else if all_done {
                    Decision::Skip
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::OneSuccess => {
                if up.success > 0 || up.total == 0 {
                    Decision::Ready
                } else if all_done {
                    if failed > 0 {
                        Decision::UpstreamFailed
                    } else {
                        Decision::Skip
                    }
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::NoneFailed => {
                if failed > 0 {
                    Decision::UpstreamFailed
                } else if all_done {
                    Decision::Ready
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::NoneFailedMinOneSuccess => {
                if failed > 0 {
                    Decision::UpstreamFailed
                } else if !all_done {
                    Decision::Wait
                } else if up.success > 0 || up.total == 0 {
                    Decision::Ready
                } else {
                    Decision::Skip
                }
            }
            TriggerRule::AllFailed => {
                if up.success + up.skipped > 0 {
                    Decision::Skip
                } else if all_done {
                    Decision::Ready
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::NoneSkipped => {
                if up.skipped > 0 {
                    Decision::Skip
                } else if all_done {
                    Decision::Ready
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::AllSkipped => {
                if up.success + failed > 0 {
                    Decision::Skip
                } else if all_done {
                    Decision::Ready
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::Always => Decision::Ready,
        }
    }
}

/// How many upstream tasks are in each terminal state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    /// All upstream tasks, finished or not, so rules can tell when every one is done.
    pub total: i64,
    /// Upstream tasks that succeeded.
    pub success: i64,
    /// Upstream tasks that failed themselves.
    pub failed: i64,
    /// Upstream tasks that never ran because their own upstream failed.
    pub upstream_failed: i64,
    /// Upstream tasks their trigger rule skipped.
    pub skipped: i64,
}

/// The outcome of [`TriggerRule::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some upstream is still unfinished and the rule needs it.
    Wait,
    /// Queue the task.
    Ready,
    /// The task can never run because an upstream failed.
    UpstreamFailed,
    /// The task does not apply to this run.
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: i64, success: i64, failed: i64, skipped: i64) -> UpstreamCounts {
        UpstreamCounts {
            total,
            success,
            failed,
            upstream_failed: 0,
            skipped,
        }
    }

    #[test]
    fn all_success_waits_then_runs() {
        assert_eq!(
            TriggerRule::AllSuccess.decide(counts(2, 1, 0, 0)),
            Decision::Wait
        );
        assert_eq!(
            TriggerRule::AllSuccess.decide(counts(2, 2, 0, 0)),
            Decision::Ready
        );
        assert_eq!(
            TriggerRule::AllSuccess.decide(counts(0, 0, 0, 0)),
            Decision::Ready
        );
    }

    #[test]
    fn all_success_fails_fast_on_a_failed_upstream() {
        assert_eq!(
            TriggerRule::AllSuccess.decide(counts(3, 0, 1, 0)),
            Decision::UpstreamFailed
        );
    }

    #[test]
    fn all_done_runs_after_failures() {
        assert_eq!(
            TriggerRule::AllDone.decide(counts(2, 1, 1, 0)),
            Decision::Ready
        );
        assert_eq!(
            TriggerRule::AllDone.decide(counts(2, 0, 1, 0)),
            Decision::Wait
        );
    }

    #[test]
    fn one_failed_runs_early_or_is_skipped() {
        assert_eq!(
            TriggerRule::OneFailed.decide(counts(3, 0, 1, 0)),
            Decision::Ready
        );
        assert_eq!(
            TriggerRule::OneFailed.decide(counts(2, 2, 0, 0)),
            Decision::Skip
        );
    }

    #[test]
    fn names_round_trip() {
        for name in TriggerRule::NAMES {
            assert_eq!(TriggerRule::parse(name).unwrap().as_str(), name);
        }
        assert!(TriggerRule::parse("whenever").is_none());
    }

    #[test]
    fn the_join_after_a_branch_needs_one_success_and_no_failure() {
        let rule = TriggerRule::NoneFailedMinOneSuccess;
        assert_eq!(rule.decide(counts(2, 1, 0, 0)), Decision::Wait);
        assert_eq!(rule.decide(counts(2, 1, 0, 1)), Decision::Ready);
        assert_eq!(rule.decide(counts(2, 0, 0, 2)), Decision::Skip);
        assert_eq!(rule.decide(counts(2, 1, 1, 0)), Decision::UpstreamFailed);
    }

    #[test]
    fn all_failed_none_skipped_all_skipped_and_always() {
        assert_eq!(
            TriggerRule::AllFailed.decide(counts(2, 0, 2, 0)),
            Decision::Ready
        );
        assert_eq!(
            TriggerRule::AllFailed.decide(counts(2, 1, 0, 0)),
            Decision::Skip
        );
        assert_eq!(
            TriggerRule::NoneSkipped.decide(counts(2, 1, 1, 0)),
            Decision::Ready
        );
        assert_eq!(
            TriggerRule::NoneSkipped.decide(counts(2, 0, 0, 1)),
            Decision::Skip
        );
        assert_eq!(
            TriggerRule::AllSkipped.decide(counts(2, 0, 0, 2)),
            Decision::Ready
        );
        assert_eq!(
            TriggerRule::AllSkipped.decide(counts(2, 1, 0, 0)),
            Decision::Skip
        );
        assert_eq!(
            TriggerRule::Always.decide(counts(3, 0, 0, 0)),
            Decision::Ready
        );
    }
}
