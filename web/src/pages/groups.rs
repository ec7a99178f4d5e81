//! Task groups on a DAG's page: a group is one box of the graph and one row of the
//! grid (which opens into its tasks), standing for its tasks with the state that
//! needs attention first.

use std::collections::HashMap;

use orchestrator::TaskSpec;

/// The state that stands for several: the first of failed, upstream_failed, running,
/// up_for_retry, waiting, queued, scheduled that any has; success when all succeeded
/// or were skipped and one succeeded; else skipped (or `none` for no states).
pub fn fold_state<'a>(states: impl IntoIterator<Item = &'a str>) -> String {
    const URGENT: [&str; 7] = [
        "failed",
        "upstream_failed",
        "running",
        "up_for_retry",
        "waiting",
        "queued",
        "scheduled",
    ];
    let states: Vec<&str> = states.into_iter().collect();
    if let Some(s) = URGENT.iter().find(|u| states.contains(u)) {
        return s.to_string();
    }
    if states.contains(&"success") {
        "success".into()
    } else if states.contains(&"skipped") {
        "skipped".into()
    } else {
        "none".into()
    }
}

/// The name a group's box and row go by: its name and how many tasks it holds (no task
/// id has a space, so it names no task).
pub fn label(group: &str, size: usize) -> String {
    format!("{group} ({size} tasks)")
}

/// Nodes of a graph with their upstream nodes, in file order.
pub type Shape = Vec<(String, Vec<String>)>;

/// The DAG's shape with each group folded into one node, and each task's node.
pub fn fold(tasks: &[TaskSpec]) -> (Shape, HashMap<String, String>) {
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for t in tasks {
        if let Some(g) = &t.group {
            *sizes.entry(g.as_str()).or_default() += 1;
        }
    }
    let node_of: HashMap<String, String> = tasks
        .iter()
        .map(|t| {
            let node = match &t.group {
                Some(g) => label(g, sizes[g.as_str()]),
                None => t.id.clone(),
            };
            (t.id.clone(), node)
        })
        .collect();
    let mut shape: Shape = Vec::new();
    for t in tasks {
        let node = &node_of[&t.id];
        let at = match shape.iter().position(|(n, _)| n == node) {
            Some(i) => i,
            None => {
                shape.push((node.clone(), Vec::new()));
                shape.len() - 1
            }
        };
        for d in &t.depends_on {
            let up = &node_of[d];
            if up != node && !shape[at].1.contains(up) {
                shape[at].1.push(up.clone());
            }
        }
    }
    (shape, node_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, group: Option<&str>, deps: &[&str]) -> TaskSpec {
        let mut t: TaskSpec = serde_json::from_value(serde_json::json!({
            "id": id, "kind": "noop", "depends_on": deps, "trigger_rule": "all_success",
            "params": {}, "retry": { "retries": 0, "delay": 1, "backoff": false, "max_delay": 1 },
            "timeout": null
        }))
        .unwrap();
        t.group = group.map(String::from);
        t
    }

    #[test]
    fn a_group_folds_into_one_node_with_the_edges_of_its_tasks() {
        let tasks = vec![
            task("start", None, &[]),
            task("a", Some("extract"), &["start"]),
            task("b", Some("extract"), &["a"]),
            task("c", Some("extract"), &["start"]),
            task("load", None, &["b", "c"]),
        ];
        let (shape, node_of) = fold(&tasks);
        assert_eq!(
            shape,
            vec![
                ("start".to_string(), vec![]),
                ("extract (3 tasks)".to_string(), vec!["start".to_string()]),
                ("load".to_string(), vec!["extract (3 tasks)".to_string()]),
            ]
        );
        assert_eq!(node_of["b"], "extract (3 tasks)");
    }

    #[test]
    fn the_state_that_needs_attention_stands_for_the_group() {
        assert_eq!(fold_state(["success", "failed", "running"]), "failed");
        assert_eq!(fold_state(["success", "running"]), "running");
        assert_eq!(fold_state(["success", "skipped"]), "success");
        assert_eq!(fold_state(["skipped"]), "skipped");
        assert_eq!(fold_state([]), "none");
    }
}
