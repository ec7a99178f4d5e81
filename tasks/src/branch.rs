//! Control flow: `branch` chooses which of its direct downstream tasks run (Airflow's
//! BranchPythonOperator, Kestra's Switch), `short_circuit` skips everything below it
//! when its condition is false (Airflow's ShortCircuitOperator). Both decide from
//! their params, which templates make a decision over the run's context:
//! `follow = "{{ 'full' if conf.full else 'incremental' }}"`,
//! `condition = "{{ upstream.count.output.rows > 0 }}"`. Any other kind branches too
//! with `branch = true` on its task: its output names the tasks to follow.

use async_trait::async_trait;
use orchestrator::{Task, TaskConfig, TaskContext};
use serde::Deserialize;
use serde_json::{Value, json};

/// The params of a `branch` task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// The direct downstream task (or tasks) to run; the others are skipped. An empty
    /// string or list skips them all.
    pub follow: OneOrMany,
}

/// A task id or a list of them; a string may list several, separated by commas.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One id, or ids separated by commas (what a template renders most easily).
    One(String),
    /// Several ids.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The ids, without blanks.
    pub fn ids(&self) -> Vec<String> {
        let all: Vec<&str> = match self {
            OneOrMany::One(s) => s.split(',').collect(),
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        };
        all.into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

impl TaskConfig for Branch {}

#[async_trait]
impl Task for Branch {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        let ids = self.follow.ids();
        ctx.follow_only(ids.clone());
        Ok(json!({ "follow": ids }))
    }
}

/// The params of a `short_circuit` task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortCircuit {
    /// Whether the tasks below run: a boolean, or a string that templates render
    /// (`"false"`, `"0"`, `"no"`, `"none"`, `""` are false, as in Python).
    pub condition: Condition,
    /// When false skips every task below, whatever its trigger rule (the default, as
    /// in Airflow); `false` skips only the direct downstream tasks and lets trigger
    /// rules carry it on (an `all_done` task below still runs).
    #[serde(default = "yes")]
    pub ignore_downstream_trigger_rules: bool,
}

fn yes() -> bool {
    true
}

/// A condition as a DAG file writes it, or as a template rendered it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Condition {
    /// `true` or `false`.
    Bool(bool),
    /// A number: zero is false.
    Number(f64),
    /// A rendered template: false when it reads as false.
    Text(String),
}

impl Condition {
    /// Whether it holds, with Python's (and Jinja's) idea of a false value.
    pub fn holds(&self) -> bool {
        match self {
            Condition::Bool(b) => *b,
            Condition::Number(n) => *n != 0.0,
            Condition::Text(s) => !matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "" | "false" | "0" | "no" | "off" | "none" | "null"
            ),
        }
    }
}

impl TaskConfig for ShortCircuit {}

#[async_trait]
impl Task for ShortCircuit {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        let holds = self.condition.holds();
        if !holds {
            if self.ignore_downstream_trigger_rules {
                ctx.log
                    .info("The condition is false: every task below is skipped.");
                ctx.skip_downstream();
            } else {
                ctx.log
                    .info("The condition is false: the direct downstream tasks are skipped.");
                ctx.follow_only(Vec::new());
            }
        }
        Ok(json!({ "condition": holds }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_is_false_as_python_would_say() {
        for s in ["", "False", "false", "0", " none ", "NULL", "no"] {
            assert!(!Condition::Text(s.into()).holds(), "{s:?}");
        }
        for s in ["true", "True", "1", "yes", "rows"] {
            assert!(Condition::Text(s.into()).holds(), "{s:?}");
        }
        assert!(!Condition::Number(0.0).holds());
        assert!(Condition::Bool(true).holds());
    }

    #[test]
    fn a_branch_names_one_task_several_or_none() {
        assert_eq!(OneOrMany::One("a".into()).ids(), ["a"]);
        assert_eq!(OneOrMany::One("a, b".into()).ids(), ["a", "b"]);
        assert_eq!(OneOrMany::One(" ".into()).ids(), Vec::<String>::new());
        assert_eq!(OneOrMany::Many(vec!["x".into()]).ids(), ["x"]);
    }
}
