//! The `[defaults]` and `[[task]]` tables: retry policies, kinds and their params,
//! dependencies and trigger rules, each problem with its line and column.

use std::collections::HashMap;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::header::is_valid_id;
use super::walk::{At, Walker, key_span, span_of_path};
use super::{Diagnostic, MapOver, RetryPolicy, TaskSpec, cycle};
use crate::registry::Registry;
use crate::trigger_rule::TriggerRule;

pub(super) const RETRY_KEYS: &[&str] = &[
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
];
pub(super) const TASK_KEYS: &[&str] = &[
    "id",
    "kind",
    "depends_on",
    "trigger_rule",
    "params",
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
    "branch",
    "map_over",
    "max_active_mapped",
    "group",
    "on_failure",
    "on_success",
    "on_retry",
    "priority",
    "pool",
    "pool_slots",
    "queue",
];

/// Retry and timeout settings written in one table; `None` where not written.
#[derive(Default, Clone)]
pub(super) struct Overrides {
    pub(super) retries: Option<u32>,
    pub(super) delay: Option<Duration>,
    pub(super) backoff: Option<bool>,
    pub(super) max_delay: Option<Duration>,
    pub(super) timeout: Option<Duration>,
}

impl Overrides {
    fn or(&self, base: &Overrides) -> Overrides {
        Overrides {
            retries: self.retries.or(base.retries),
            delay: self.delay.or(base.delay),
            backoff: self.backoff.or(base.backoff),
            max_delay: self.max_delay.or(base.max_delay),
            timeout: self.timeout.or(base.timeout),
        }
    }

    fn policy(&self) -> RetryPolicy {
        let d = RetryPolicy::default();
        RetryPolicy {
            retries: self.retries.unwrap_or(d.retries),
            delay: self.delay.unwrap_or(d.delay),
            backoff: self.backoff.unwrap_or(d.backoff),
            max_delay: self.max_delay.unwrap_or(d.max_delay),
        }
    }
}

pub(super) fn read_retry(
    w: &mut Walker<'_>,
    t: &DeTable<'_>,
    section: &str,
    base: &Overrides,
) -> Overrides {
    let non_zero = |w: &mut Walker<'_>, key: &str, d: Option<At<Duration>>| match d {
        Some((d, span)) if d.is_zero() => {
            w.error(
                span,
                format!("`{key}` in {section} must be longer than zero"),
            );
            None
        }
        other => other.map(|d| d.0),
    };
    let delay = w.duration(t, "retry_delay", section);
    let max_delay = w.duration(t, "max_retry_delay", section);
    let timeout = w.duration(t, "timeout", section);
    Overrides {
        retries: w.count(t, "retries", section).map(|r| r.0),
        delay: delay.map(|d| d.0),
        backoff: w.boolean(t, "retry_backoff", section).map(|b| b.0),
        max_delay: non_zero(w, "max_retry_delay", max_delay),
        timeout: non_zero(w, "timeout", timeout),
    }
    .or(base)
}

pub(super) fn read_tasks(
    w: &mut Walker<'_>,
    doc: &DeTable<'_>,
    registry: &Registry,
    defaults: &Overrides,
    dag_params: &serde_json::Value,
) -> Vec<TaskSpec> {
    let Some(value) = doc.get("task") else {
        w.error(0..0, "the DAG has no tasks: add at least one [[task]]");
        return Vec::new();
    };
    let Some(items) = value.get_ref().as_array() else {
        w.error(
            value.span(),
            "`task` must be an array of tables: write each one as [[task]]",
        );
        return Vec::new();
    };

    let groups = Groups::of(items);
    let mut tasks = Vec::new();
    let mut id_spans: Vec<std::ops::Range<usize>> = Vec::new();
    let mut dep_spans: Vec<Vec<At<String>>> = Vec::new();
    let mut branch_spans: Vec<Option<std::ops::Range<usize>>> = Vec::new();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let section = format!("[[task]] #{}", index + 1);
        let Some(t) = item.get_ref().as_table() else {
            w.error(item.span(), format!("{section} must be a table"));
            continue;
        };
        let id = w.string(t, "id", &section);
        let section = match &id {
            Some((id, _)) => format!("task `{id}`"),
            None => section,
        };
        w.reject_unknown_keys(t, TASK_KEYS, &section);
        let kind = w.string(t, "kind", &section);
        if id.is_none() && !t.contains_key("id") {
            w.error(item.span(), format!("missing `id` in {section}"));
        }
        if kind.is_none() && !t.contains_key("kind") {
            w.error(item.span(), format!("missing `kind` in {section}"));
        }
        let group = w.string(t, "group", &section);
        if let Some((name, span)) = &group
            && !is_valid_id(name)
        {
            w.error(
                span.clone(),
                format!(
                    "invalid group \"{name}\" in {section}: use letters, digits, `_`, `-` and `.`"
                ),
            );
        }
        let depends_on = w.strings(t, "depends_on", &section).unwrap_or_default();
        let depends_on = groups.expand(
            w,
            depends_on,
            group.as_ref().map(|g| g.0.as_str()),
            &section,
        );
        let trigger_rule = match w.string(t, "trigger_rule", &section) {
            Some((name, span)) => TriggerRule::parse(&name).unwrap_or_else(|| {
                w.error(
                    span,
                    format!(
                        "unknown trigger_rule \"{name}\" in {section} (expected one of: {})",
                        TriggerRule::NAMES.join(", ")
                    ),
                );
                TriggerRule::default()
            }),
            None => TriggerRule::default(),
        };
        let branch = w.boolean(t, "branch", &section);
        let alerts = super::alerts::read(w, t, &section, registry);
        let priority = w.integer(t, "priority", &section).map(|p| p.0);
        let pool = w.string(t, "pool", &section);
        if let Some((name, span)) = &pool
            && let Some(known) = registry.pools()
            && !known.contains_key(name)
        {
            let listed: Vec<&str> = known.keys().map(String::as_str).collect();
            w.error(
                span.clone(),
                format!(
                    "{section} names no pool `{name}` (pools: {}); define it under [pools] in the configuration",
                    if listed.is_empty() { "none".into() } else { listed.join(", ") }
                ),
            );
        }
        let pool_slots = match w.count(t, "pool_slots", &section) {
            Some((0, span)) => {
                w.error(
                    span,
                    format!("`pool_slots` in {section} must be at least 1"),
                );
                1
            }
            Some((n, _)) => n,
            None => 1,
        };
        if let (Some((name, span)), Some(known)) = (&pool, registry.pools())
            && let Some(&slots) = known.get(name)
            && pool_slots > slots
        {
            w.error(
                span.clone(),
                format!("{section} takes {pool_slots} slots of pool `{name}`, which has {slots}: it could never run"),
            );
        }
        let queue = w.string(t, "queue", &section);
        if let Some((name, span)) = &queue
            && !is_valid_id(name)
        {
            w.error(
                span.clone(),
                format!(
                    "invalid queue \"{name}\" in {section}: use letters, digits, `_`, `-` and `.`"
                ),
            );
        }
        let map_over = read_map_over(w, t, &section, dag_params, &depends_on);
        let max_active_mapped = w.count(t, "max_active_mapped", &section);
        if let (Some((_, span)), None) = (&max_active_mapped, &map_over) {
            w.error(
                span.clone(),
                format!("`max_active_mapped` in {section} limits a mapped task: add `map_over`"),
            );
        }
        if let Some((0, span)) = &max_active_mapped {
            w.error(
                span.clone(),
                format!("`max_active_mapped` in {section} must be at least 1"),
            );
        }
        let params_value = t.get("params");
        let mut params = w.params_table(t, &section);
        // A file that cannot be read is the one problem to report about the params.
        let files_read = kind.as_ref().is_none_or(|(kind, _)| {
            inline_files(
                w,
                registry.inline_files(kind),
                &mut params,
                params_value,
                &section,
            )
        });
        let overrides = read_retry(w, t, &section, defaults);

        if let (Some((kind, span)), true) = (&kind, files_read) {
            check_params(
                w,
                registry,
                kind,
                span.clone(),
                &section,
                &params,
                params_value,
            );
        }
        let upstream: Vec<String> = depends_on.iter().map(|d| d.0.clone()).collect();
        for e in crate::template::check(&params, dag_params, &upstream, map_over.is_some()) {
            let span = params_value.map_or(item.span(), |v| span_of_path(v, &e.path));
            w.error(span, format!("{section}: {e}"));
        }
        let Some((id, span)) = id else { continue };
        if !is_valid_id(&id) {
            w.error(
                span.clone(),
                format!("invalid task id \"{id}\": use letters, digits, `_`, `-` and `.`"),
            );
        }
        if let Some(&first) = first_seen.get(&id) {
            let line = Diagnostic::at(w.file, w.src, id_spans[first].clone(), "").line;
            w.error(
                span,
                format!("duplicate task id `{id}` (first defined on line {line})"),
            );
            continue;
        }
        first_seen.insert(id.clone(), tasks.len());
        id_spans.push(span);
        dep_spans.push(depends_on.clone());
        branch_spans.push(branch.as_ref().filter(|b| b.0).map(|b| b.1.clone()));
        tasks.push(TaskSpec {
            id,
            kind: kind.map(|k| k.0).unwrap_or_default(),
            depends_on: depends_on.into_iter().map(|d| d.0).collect(),
            trigger_rule,
            params,
            retry: overrides.policy(),
            timeout: overrides.timeout,
            branch: branch.is_some_and(|b| b.0),
            map_over,
            max_active_mapped: max_active_mapped.map(|m| m.0),
            group: group.map(|g| g.0),
            alerts,
            priority,
            pool: pool.map(|p| p.0),
            pool_slots,
            queue: queue.map(|q| q.0),
        });
    }

    check_dependencies(w, &tasks, &dep_spans, &first_seen);
    for (task, span) in tasks.iter().zip(&branch_spans) {
        let below = tasks.iter().any(|t| t.depends_on.contains(&task.id));
        if let (Some(span), false) = (span, below) {
            w.error(
                span.clone(),
                format!(
                    "task `{}` branches but no task depends on it: a branch chooses among its downstream tasks",
                    task.id
                ),
            );
        }
    }
    tasks
}

/// The task groups of a file (`group = "extract"`), read before its tasks so that
/// `depends_on = ["group:extract"]` can name one before or after its members.
struct Groups {
    /// Each group's last tasks: its members that no other member depends on.
    leaves: std::collections::BTreeMap<String, Vec<String>>,
}

impl Groups {
    fn of(items: &[Spanned<DeValue<'_>>]) -> Self {
        let text = |t: &DeTable<'_>, key: &str| -> Option<String> {
            t.get(key)?.get_ref().as_str().map(String::from)
        };
        let mut members: std::collections::BTreeMap<String, Vec<(String, Vec<String>)>> =
            Default::default();
        for item in items {
            let Some(t) = item.get_ref().as_table() else {
                continue;
            };
            let (Some(id), Some(group)) = (text(t, "id"), text(t, "group")) else {
                continue;
            };
            let deps = t
                .get("depends_on")
                .and_then(|d| d.get_ref().as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.get_ref().as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            members.entry(group).or_default().push((id, deps));
        }
        let leaves = members
            .into_iter()
            .map(|(group, tasks)| {
                let last = tasks
                    .iter()
                    .filter(|(id, _)| !tasks.iter().any(|(_, deps)| deps.contains(id)))
                    .map(|(id, _)| id.clone())
                    .collect();
                (group, last)
            })
            .collect();
        Self { leaves }
    }

    /// `depends_on` with each `group:NAME` replaced by that group's last tasks.
    fn expand(
        &self,
        w: &mut Walker<'_>,
        depends_on: Vec<At<String>>,
        own: Option<&str>,
        section: &str,
    ) -> Vec<At<String>> {
        let mut out: Vec<At<String>> = Vec::with_capacity(depends_on.len());
        for (dep, span) in depends_on {
            let Some(name) = dep.strip_prefix("group:") else {
                out.push((dep, span));
                continue;
            };
            match self.leaves.get(name) {
                None => {
                    let known: Vec<&str> = self.leaves.keys().map(String::as_str).collect();
                    w.error(
                        span,
                        format!(
                            "{section} depends on unknown group `{name}` (groups: {})",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
                Some(_) if own == Some(name) => w.error(
                    span,
                    format!("{section} is in group `{name}` and cannot depend on it"),
                ),
                Some(leaves) => {
                    for leaf in leaves {
                        if !out.iter().any(|(d, _)| d == leaf) {
                            out.push((leaf.clone(), span.clone()));
                        }
                    }
                }
            }
        }
        out
    }
}

/// Reads `map_over`: a list, or a path whose root the file can check (`upstream.<one
/// of depends_on>.output...`, `params.<a DAG param>...`, `conf...`).
fn read_map_over(
    w: &mut Walker<'_>,
    t: &DeTable<'_>,
    section: &str,
    dag_params: &serde_json::Value,
    depends_on: &[At<String>],
) -> Option<MapOver> {
    let value = t.get("map_over")?;
    let span = value.span();
    match super::walk::to_json(value.get_ref()) {
        serde_json::Value::Array(items) => Some(MapOver::List(items)),
        serde_json::Value::String(path) => {
            let parts: Vec<&str> = path.split('.').collect();
            let problem = match parts.as_slice() {
                ["upstream", task, "output", ..] => (!depends_on.iter().any(|d| d.0 == *task))
                    .then(|| format!("`{task}` is not one of its upstream tasks (depends_on)")),
                ["upstream", ..] => Some("write `upstream.<task>.output[.field...]`".into()),
                ["params", name, ..] => dag_params
                    .get(*name)
                    .is_none()
                    .then(|| format!("`params.{name}` is not one of the DAG's params")),
                ["conf", _, ..] => None,
                _ => Some(
                    "a path starts with `upstream.<task>.output`, `params.<name>` or `conf.<key>`"
                        .into(),
                ),
            };
            match problem {
                Some(p) => {
                    w.error(
                        span,
                        format!("invalid map_over \"{path}\" in {section}: {p}"),
                    );
                    None
                }
                None => Some(MapOver::Path(path)),
            }
        }
        other => {
            w.error(
                span,
                format!("`map_over` in {section} must be a list or a path such as \"upstream.t.output.files\", found {other}"),
            );
            None
        }
    }
}

/// Reads the files a kind's params name (`file = "daily.sql"`, relative to the DAG
/// file) into the params their text goes into, so the stored DAG holds the text.
/// Returns whether every file was read.
fn inline_files(
    w: &mut Walker<'_>,
    files: &[crate::registry::InlineFile],
    params: &mut serde_json::Value,
    params_value: Option<&Spanned<DeValue<'_>>>,
    section: &str,
) -> bool {
    let mut read = true;
    let Some(map) = params.as_object_mut() else {
        return read;
    };
    for file in files {
        let (from, into) = (file.from, file.into);
        let Some(serde_json::Value::String(name)) = map.get(from) else {
            continue;
        };
        let span = params_value.map_or(0..0, |v| span_of_path(v, &[from.to_string()]));
        if map.contains_key(into) {
            w.error(
                span,
                format!("{section}: give `params.{from}` or `params.{into}`, not both"),
            );
            read = false;
            continue;
        }
        let path = w
            .file
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                // A script's braces are its own: kept from the templates, as raw text.
                let text = if file.templated || !crate::template::is_template(&text) {
                    text
                } else {
                    format!("{{% raw %}}{text}{{% endraw %}}")
                };
                map.insert(into.to_string(), serde_json::Value::String(text));
            }
            Err(e) => {
                w.error(
                    span,
                    format!(
                        "{section}: cannot read params.{from} {}: {e}",
                        path.display()
                    ),
                );
                read = false;
            }
        }
    }
    read
}

pub(super) fn check_params(
    w: &mut Walker<'_>,
    registry: &Registry,
    kind: &str,
    kind_span: std::ops::Range<usize>,
    section: &str,
    params: &serde_json::Value,
    params_value: Option<&Spanned<DeValue<'_>>>,
) {
    match registry.build(kind, params) {
        None => {
            let known: Vec<&str> = registry.kinds().collect();
            w.error(
                kind_span,
                format!(
                    "unknown task kind \"{kind}\" in {section} (known kinds: {})",
                    known.join(", ")
                ),
            );
        }
        Some(Ok(_)) => {}
        // A templated string is the kind's to judge once rendered, at the attempt.
        Some(Err(e)) if templated_at(params, &e.path) => {}
        Some(Err(e)) => {
            let span = match params_value {
                Some(v) => {
                    // serde names the table of an unknown field, not the field: find its key.
                    let unknown = e
                        .message
                        .strip_prefix("unknown field `")
                        .and_then(|r| r.split('`').next());
                    let at = span_of_path(v, &e.path);
                    let table = e.path.iter().try_fold(v, |here, seg| {
                        here.get_ref()
                            .as_table()?
                            .iter()
                            .find(|(k, _)| k.get_ref() == seg)
                            .map(|(_, v)| v)
                    });
                    match (unknown, table.and_then(|t| t.get_ref().as_table())) {
                        (Some(name), Some(t)) => key_span(t, name).unwrap_or(at),
                        _ => at,
                    }
                }
                None => kind_span,
            };
            w.error(span, format!("{section}: {e}"));
        }
    }
}

/// Whether the param at `path` is, or holds, a templated string.
fn templated_at(params: &serde_json::Value, path: &[String]) -> bool {
    path.iter()
        .try_fold(params, |v, seg| match v {
            serde_json::Value::Object(m) => m.get(seg),
            serde_json::Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
        .is_some_and(crate::template::has_templates)
}

pub(super) fn check_dependencies(
    w: &mut Walker<'_>,
    tasks: &[TaskSpec],
    dep_spans: &[Vec<At<String>>],
    index: &HashMap<String, usize>,
) {
    let mut edges = Vec::new();
    for (down, deps) in dep_spans.iter().enumerate() {
        let mut seen = Vec::new();
        for (dep, span) in deps {
            if seen.contains(dep) {
                w.error(
                    span.clone(),
                    format!(
                        "task `{}` lists `{dep}` twice in depends_on",
                        tasks[down].id
                    ),
                );
                continue;
            }
            seen.push(dep.clone());
            match index.get(dep) {
                Some(&up) if up == down => {
                    w.error(span.clone(), format!("task `{dep}` depends on itself"));
                }
                Some(&up) => edges.push((up, down)),
                None => w.error(
                    span.clone(),
                    format!("task `{}` depends on unknown task `{dep}`", tasks[down].id),
                ),
            }
        }
    }
    for cycle in cycle::find_cycles(tasks.len(), &edges) {
        let names: Vec<&str> = cycle.iter().map(|&i| tasks[i].id.as_str()).collect();
        // Point at the depends_on entry that closes the loop: the start's upstream.
        let start = cycle[0];
        let closing_up = &tasks[cycle[cycle.len() - 2]].id;
        let span = dep_spans[start]
            .iter()
            .find(|(d, _)| d == closing_up)
            .map(|(_, s)| s.clone())
            .unwrap_or(0..0);
        w.error(span, format!("dependency cycle: {}", names.join(" -> ")));
    }
}
