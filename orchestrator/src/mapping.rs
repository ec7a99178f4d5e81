//! Dynamic task mapping: the list a mapped task runs once per element of, resolved
//! when the task is due from what the run knows (an upstream output, the run's params
//! or conf) or from the DAG file. The store's side (instances, their ends, the mapped
//! task's end) is [`crate::store::mapped`].

use std::collections::BTreeMap;

use serde_json::Value;

use crate::dag::MapOver;

/// The most instances one mapped task may have: each is a row of the state store.
pub const MAX_INSTANCES: usize = 100_000;

/// The elements `map_over` names, given the run's upstream outputs, params and conf.
/// The error says what the path found instead of a list.
pub fn resolve(
    map_over: &MapOver,
    upstream_outputs: &BTreeMap<String, Value>,
    run_params: &Value,
    conf: &Value,
) -> Result<Vec<Value>, String> {
    let (found, path) = match map_over {
        MapOver::List(items) => return check_size(items.clone(), "the list"),
        MapOver::Path(path) => (lookup(path, upstream_outputs, run_params, conf), path),
    };
    match found {
        Some(Value::Array(items)) => check_size(items.clone(), path),
        Some(other) => Err(format!(
            "map_over {path} is not a list: it is {}",
            excerpt(other)
        )),
        None => Err(format!("map_over {path} names nothing in this run")),
    }
}

fn lookup<'a>(
    path: &str,
    upstream_outputs: &'a BTreeMap<String, Value>,
    run_params: &'a Value,
    conf: &'a Value,
) -> Option<&'a Value> {
    let parts: Vec<&str> = path.split('.').collect();
    let (root, rest) = match parts.as_slice() {
        ["upstream", task, "output", rest @ ..] => (upstream_outputs.get(*task)?, rest),
        ["params", rest @ ..] => (run_params, rest),
        ["conf", rest @ ..] => (conf, rest),
        _ => return None,
    };
    rest.iter().try_fold(root, |here, part| match here {
        Value::Object(map) => map.get(*part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn check_size(items: Vec<Value>, what: &str) -> Result<Vec<Value>, String> {
    if items.len() > MAX_INSTANCES {
        return Err(format!(
            "map_over {what} has {} elements; a task maps into at most {MAX_INSTANCES}",
            items.len()
        ));
    }
    Ok(items)
}

fn excerpt(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// The task id of instance `index` of mapped task `task`: `task[index]` (task ids
/// cannot hold brackets, so it names nothing else).
pub fn instance_id(task: &str, index: usize) -> String {
    format!("{task}[{index}]")
}

/// The mapped task and index a mapped instance's task id names (`load[12]` ->
/// `("load", 12)`); `None` for any other task.
pub fn split_instance(task_id: &str) -> Option<(&str, usize)> {
    let (task, rest) = task_id.strip_suffix(']')?.rsplit_once('[')?;
    Some((task, rest.parse().ok()?))
}

/// Whether `task_id` names a mapped instance.
pub fn is_instance(task_id: &str) -> bool {
    split_instance(task_id).is_some()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_path_finds_its_list_in_an_upstream_output_the_params_or_the_conf() {
        let upstream =
            BTreeMap::from([("list".to_string(), json!({ "files": ["a", "b"], "n": 2 }))]);
        let params = json!({ "regions": ["eu", "us", "apac"] });
        let conf = json!({ "days": [[1, 2], [3]] });
        let path = |p: &str| MapOver::Path(p.into());
        assert_eq!(
            resolve(
                &path("upstream.list.output.files"),
                &upstream,
                &params,
                &conf
            )
            .unwrap(),
            [json!("a"), json!("b")]
        );
        assert_eq!(
            resolve(&path("params.regions"), &upstream, &params, &conf)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            resolve(&path("conf.days.0"), &upstream, &params, &conf).unwrap(),
            [json!(1), json!(2)]
        );
        assert_eq!(
            resolve(&MapOver::List(vec![json!(1)]), &upstream, &params, &conf).unwrap(),
            [json!(1)]
        );
        assert_eq!(
            resolve(&path("upstream.list.output.n"), &upstream, &params, &conf).unwrap_err(),
            "map_over upstream.list.output.n is not a list: it is 2"
        );
        assert_eq!(
            resolve(&path("conf.missing"), &upstream, &params, &conf).unwrap_err(),
            "map_over conf.missing names nothing in this run"
        );
    }

    #[test]
    fn an_instance_is_named_by_its_task_and_index() {
        assert_eq!(instance_id("load", 12), "load[12]");
        assert_eq!(split_instance("load[12]"), Some(("load", 12)));
        assert_eq!(split_instance("load"), None);
        assert!(is_instance("load[12]"));
        assert!(!is_instance("load"));
    }
}
