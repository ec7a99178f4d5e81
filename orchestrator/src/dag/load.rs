//! TOML file -> [`Dag`], collecting every problem with its file, line and column:
//! the folder and the file, here; the `[dag]` header in [`super::header`], the
//! `[defaults]` and `[[task]]` tables in [`super::task_table`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::header::read_dag_header;
use super::task_table::{Overrides, RETRY_KEYS, read_retry, read_tasks};
use super::walk::Walker;
use super::{Dag, Diagnostic};
use crate::registry::Registry;

const TOP_KEYS: &[&str] = &["dag", "defaults", "task"];

/// Every DAG in a folder that loaded, and every problem of those that did not.
#[derive(Debug, Default)]
pub struct DagBag {
    /// The DAGs that loaded, for the scheduler to run and the store to record.
    pub dags: Vec<Dag>,
    /// Every problem of the files that did not load, for logs, the CLI and the pages.
    pub errors: Vec<Diagnostic>,
    /// The folder itself could not be read, so `dags` says nothing of what is in it.
    pub unreadable: bool,
}

impl DagBag {
    /// The loaded DAG named `id`, for callers that hold an id from a run or a request.
    pub fn get(&self, id: &str) -> Option<&Dag> {
        self.dags.iter().find(|d| d.id == id)
    }
}

/// Each `*.toml` file of a DAG folder with its size and modification time: when this
/// is unchanged, so is what [`load_dir`] would find (short of an edit that keeps both).
pub type Fingerprint = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

/// The folder's [`Fingerprint`] now: one directory listing, no parsing.
pub fn fingerprint(dir: &Path) -> Fingerprint {
    let mut files: Fingerprint = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.path(), meta.len(), meta.modified().ok()))
        })
        .collect();
    files.sort();
    files
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
            bag.unreadable = true;
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
    let dag_params = header
        .as_ref()
        .and_then(|h| h.as_ref())
        .map(|h| h.params.clone())
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    let defaults = match defaults_table {
        Some(t) => {
            w.reject_unknown_keys(t, RETRY_KEYS, "[defaults]");
            read_retry(&mut w, t, "[defaults]", &Overrides::default())
        }
        None => Overrides::default(),
    };
    let alerts = dag_table
        .map(|t| super::alerts::read(&mut w, t, "[dag]", registry))
        .unwrap_or_default();
    let tasks = read_tasks(&mut w, doc, registry, &defaults, &dag_params);

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
            params: h.params,
            dagrun_timeout: dag_table
                .and_then(|t| w.duration(t, "dagrun_timeout", "[dag]"))
                .map(|d| d.0),
            priority: dag_table
                .and_then(|t| w.integer(t, "priority", "[dag]"))
                .map_or(0, |p| p.0),
            alerts,
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
