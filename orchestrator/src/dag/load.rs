//! TOML file -> [`Dag`], collecting every problem with its file, line and column.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::walk::{At, Walker, key_span, span_of_path, to_json};
use super::{Dag, Diagnostic, RetryPolicy, TaskSpec, cycle};
use crate::registry::Registry;
use crate::schedule::Schedule;
use crate::trigger_rule::TriggerRule;

const TOP_KEYS: &[&str] = &["dag", "defaults", "task"];
const DAG_KEYS: &[&str] = &[
    "id",
    "description",
    "tags",
    "schedule",
    "timezone",
    "start_date",
    "catchup",
    "max_active_runs",
    "triggered_by",
];
const RETRY_KEYS: &[&str] = &[
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
];
const TASK_KEYS: &[&str] = &[
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
];

/// Every DAG in a folder that loaded, and every problem of those that did not.
#[derive(Debug, Default)]
pub struct DagBag {
    /// The DAGs that loaded, for the scheduler to run and the store to record.
    pub dags: Vec<Dag>,
    /// Every problem of the files that did not load, for logs, the CLI and the pages.
    pub errors: Vec<Diagnostic>,
}

impl DagBag {
    /// The loaded DAG named `id`, for callers that hold an id from a run or a request.
    pub fn get(&self, id: &str) -> Option<&Dag> {
        self.dags.iter().find(|d| d.id == id)
    }
}

/// Loads every `*.toml` file of `dir` (not its subfolders), in name order. A broken
/// file adds its problems to `errors` and never stops the others.
pub fn load_dir(dir: &Path, registry: &Registry) -> DagBag {
    let mut bag = DagBag::default();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect(),
        Err(e) => {
            bag.errors.push(Diagnostic {
                file: dir.to_path_buf(),
                line: 1,
                column: 1,
                message: format!("cannot read the DAG folder: {e}"),
            });
            return bag;
        }
    };
    files.sort();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        match load_file(&file, registry) {
            Ok(dag) => {
                if let Some(first) = seen.get(&dag.id) {
                    bag.errors.push(Diagnostic {
                        file: file.clone(),
                        line: 1,
                        column: 1,
                        message: format!(
                            "DAG id `{}` is already defined in {}",
                            dag.id,
                            first.display()
                        ),
                    });
                } else {
                    seen.insert(dag.id.clone(), file);
                    bag.dags.push(dag);
                }
            }
            Err(errors) => bag.errors.extend(errors),
        }
    }
    bag
}

/// Reads and parses one DAG file.
pub fn load_file(file: &Path, registry: &Registry) -> Result<Dag, Vec<Diagnostic>> {
    let src = std::fs::read_to_string(file).map_err(|e| {
        vec![Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {e}"),
        }]
    })?;
    parse_dag(file, &src, registry)
}

/// Parses DAG source text; `file` only names it in messages.
pub fn parse_dag(file: &Path, src: &str, registry: &Registry) -> Result<Dag, Vec<Diagnostic>> {
    let mut w = Walker::new(file, src);
    let (doc, syntax_errors) = DeTable::parse_recoverable(src);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            let span = e.span().unwrap_or(0..0);
            w.error(span, format!("TOML syntax: {}", e.message().trim_end()));
        }
        return Err(w.errors);
    }
    let doc = doc.get_ref();
    w.reject_unknown_keys(doc, TOP_KEYS, "the file");

    let dag_table = section(&mut w, doc, "dag", "[dag]");
    let defaults_table = section(&mut w, doc, "defaults", "[defaults]");

    let header = dag_table.map(|t| read_dag_header(&mut w, t));
    let defaults = match defaults_table {
        Some(t) => {
            w.reject_unknown_keys(t, RETRY_KEYS, "[defaults]");
            read_retry(&mut w, t, "[defaults]", &Overrides::default())
        }
        None => Overrides::default(),
    };
    let tasks = read_tasks(&mut w, doc, registry, &defaults);

    if dag_table.is_none() {
        w.error(0..0, "missing [dag] table (with at least `id`)");
    }
    w.errors.sort_by_key(|d| (d.line, d.column));
    match (header, w.errors.is_empty()) {
        (Some(Some(h)), true) => Ok(Dag {
            id: h.id,
            description: h.description,
            tags: h.tags,
            schedule: h.schedule,
            start_date: h.start_date,
            catchup: h.catchup,
            max_active_runs: h.max_active_runs,
            triggered_by: h.triggered_by,
            tasks,
            file: file.to_path_buf(),
        }),
        _ => Err(w.errors),
    }
}

fn section<'d, 'i>(
    w: &mut Walker<'_>,
    doc: &'d DeTable<'i>,
    key: &str,
    name: &str,
) -> Option<&'d DeTable<'i>> {
    let value = doc.get(key)?;
    match value.get_ref().as_table() {
        Some(t) => Some(t),
        None => {
            w.error(
                value.span(),
                format!(
                    "{name} must be a table, found {}",
                    value.get_ref().type_str()
                ),
            );
            None
        }
    }
}

struct Header {
    id: String,
    description: String,
    tags: Vec<String>,
    schedule: Schedule,
    start_date: Option<DateTime<Utc>>,
    catchup: bool,
    max_active_runs: u32,
    triggered_by: Vec<String>,
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn read_dag_header(w: &mut Walker<'_>, t: &DeTable<'_>) -> Option<Header> {
    const S: &str = "[dag]";
    w.reject_unknown_keys(t, DAG_KEYS, S);
    let id = match w.string(t, "id", S) {
        Some((id, span)) if !is_valid_id(&id) => {
            w.error(
                span,
                format!("invalid DAG id \"{id}\": use letters, digits, `_`, `-` and `.`"),
            );
            None
        }
        Some((id, _)) => Some(id),
        None => {
            if !t.contains_key("id") {
                w.error(0..0, "missing `id` in [dag]");
            }
            None
        }
    };
    let description = w
        .string(t, "description", S)
        .map(|d| d.0)
        .unwrap_or_default();
    let tags = w
        .strings(t, "tags", S)
        .map(|v| v.into_iter().map(|s| s.0).collect())
        .unwrap_or_default();
    let timezone = match w.string(t, "timezone", S) {
        Some((name, span)) => match name.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                w.error(span, format!("unknown timezone \"{name}\" (use an IANA name such as \"Europe/Berlin\" or \"UTC\")"));
                None
            }
        },
        None => Some(Tz::UTC),
    };
    let schedule = match (w.string(t, "schedule", S), timezone) {
        (None, Some(tz)) => Some(Schedule::manual(tz)),
        (Some((expr, _)), Some(tz)) if expr.trim().eq_ignore_ascii_case("none") => {
            Some(Schedule::manual(tz))
        }
        (Some((expr, span)), Some(tz)) => match Schedule::cron(&expr, tz) {
            Ok(s) => Some(s),
            Err(e) => {
                w.error(span, e);
                None
            }
        },
        (_, None) => None,
    };
    let start_date = match (t.get("start_date"), timezone) {
        (Some(v), Some(tz)) => read_start_date(w, v, tz),
        _ => None,
    };
    let catchup = w.boolean(t, "catchup", S).map(|b| b.0).unwrap_or(false);
    let max_active_runs = match w.count(t, "max_active_runs", S) {
        Some((0, span)) => {
            w.error(span, "`max_active_runs` in [dag] must be at least 1");
            16
        }
        Some((n, _)) => n,
        None => 16,
    };
    let triggered_by = w
        .strings(t, "triggered_by", S)
        .map(|v| v.into_iter().map(|s| s.0).collect())
        .unwrap_or_default();
    Some(Header {
        triggered_by,
        id: id?,
        description,
        tags,
        schedule: schedule?,
        start_date,
        catchup,
        max_active_runs,
    })
}

/// A TOML date or datetime; without an offset it is read in the DAG's timezone.
fn read_start_date(w: &mut Walker<'_>, v: &Spanned<DeValue<'_>>, tz: Tz) -> Option<DateTime<Utc>> {
    let text = match v.get_ref() {
        DeValue::Datetime(d) => d.to_string(),
        DeValue::String(s) => s.to_string(),
        other => {
            w.error(
                v.span(),
                format!(
                    "`start_date` in [dag] must be a date or datetime, found {}",
                    other.type_str()
                ),
            );
            return None;
        }
    };
    if let Ok(d) = DateTime::parse_from_rfc3339(&text) {
        return Some(d.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN))
        });
    match naive.and_then(|n| tz.from_local_datetime(&n).earliest()) {
        Some(d) => Some(d.with_timezone(&Utc)),
        None => {
            w.error(
                v.span(),
                format!("invalid `start_date` \"{text}\": write 2026-01-01 or 2026-01-01T00:00:00"),
            );
            None
        }
    }
}

/// Retry and timeout settings written in one table; `None` where not written.
#[derive(Default, Clone)]
struct Overrides {
    retries: Option<u32>,
    delay: Option<Duration>,
    backoff: Option<bool>,
    max_delay: Option<Duration>,
    timeout: Option<Duration>,
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

fn read_retry(w: &mut Walker<'_>, t: &DeTable<'_>, section: &str, base: &Overrides) -> Overrides {
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

fn read_tasks(
    w: &mut Walker<'_>,
    doc: &DeTable<'_>,
    registry: &Registry,
    defaults: &Overrides,
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

    let mut tasks = Vec::new();
    let mut id_spans: Vec<std::ops::Range<usize>> = Vec::new();
    let mut dep_spans: Vec<Vec<At<String>>> = Vec::new();
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
        let depends_on = w.strings(t, "depends_on", &section).unwrap_or_default();
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
        let params_value = t.get("params");
        let params = match params_value {
            Some(v) if !v.get_ref().is_table() => {
                w.error(
                    v.span(),
                    format!(
                        "`params` in {section} must be a table, found {}",
                        v.get_ref().type_str()
                    ),
                );
                serde_json::Value::Object(Default::default())
            }
            Some(v) => to_json(v.get_ref()),
            None => serde_json::Value::Object(Default::default()),
        };
        let overrides = read_retry(w, t, &section, defaults);

        if let Some((kind, span)) = &kind {
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
        tasks.push(TaskSpec {
            id,
            kind: kind.map(|k| k.0).unwrap_or_default(),
            depends_on: depends_on.into_iter().map(|d| d.0).collect(),
            trigger_rule,
            params,
            retry: overrides.policy(),
            timeout: overrides.timeout,
        });
    }

    check_dependencies(w, &tasks, &dep_spans, &first_seen);
    tasks
}

fn check_params(
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

fn check_dependencies(
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
