//! The map from a task kind's name to the code that builds it. The binary fills it;
//! the engine only looks names up, so the engine never imports a task kind.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::task::Task;

/// A task kind's params that the kind rejected, with the path of the offending field
/// inside `params` (empty for the table as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// Where the bad field sits in `params`, one key per element, so messages can point at it.
    pub path: Vec<String>,
    /// What is wrong with it, shown to whoever wrote the DAG file.
    pub message: String,
}

impl ParamError {
    /// An error about the field at `path` (dot-separated, such as `env.HOME`).
    pub fn at(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path
                .split('.')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "params: {}", self.message)
        } else {
            write!(f, "params.{}: {}", self.path.join("."), self.message)
        }
    }
}

/// A task kind's config struct: deserialised from `params` (use
/// `#[serde(deny_unknown_fields)]`), then checked by `validate`, then run.
pub trait TaskConfig: Task + DeserializeOwned + 'static {
    /// Params that name a file to read when the DAG is loaded, relative to the DAG
    /// file, each with the param its text goes into: the text is stored with the DAG,
    /// so a worker needs no copy of the DAG folder.
    const INLINE_FILES: &'static [InlineFile] = &[];

    /// Whether the kind reads [`crate::TaskContext::upstream_outputs`] itself; other
    /// kinds get them only when their templates name `upstream` (an upstream output can
    /// be large: a mapped task's instances would each fetch the list they map over).
    const READS_UPSTREAM: bool = false;

    /// Checks that serde cannot express (an empty command, a negative rate).
    fn validate(&self) -> Result<(), ParamError> {
        Ok(())
    }

    /// The named connections these params refer to, each with the path of its param
    /// (`("connection", "snowflake")`), so that loading a DAG can point at an unknown one.
    fn connections(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// A param that names a file read when the DAG is loaded ([`TaskConfig::INLINE_FILES`]).
#[derive(Debug, Clone, Copy)]
pub struct InlineFile {
    /// The param that names the file (`file`, `script`).
    pub from: &'static str,
    /// The param its text goes into (`sql`, `code`).
    pub into: &'static str,
    /// Whether templates in the text render (a .sql file's do, as in Airflow; a Python
    /// script's braces are its own).
    pub templated: bool,
}

/// What [`TaskConfig::connections`] returns for a kind whose one `connection` param
/// names a connection, if it is set.
pub fn connection_param(name: Option<&String>) -> Vec<(&'static str, String)> {
    name.map(|n| ("connection", n.clone()))
        .into_iter()
        .collect()
}

type Build = Box<
    dyn Fn(&Value) -> Result<(Box<dyn Task>, Vec<(&'static str, String)>), ParamError>
        + Send
        + Sync,
>;

/// Task kinds by name.
#[derive(Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Build>,
    inline_files: BTreeMap<&'static str, &'static [InlineFile]>,
    reads_upstream: BTreeSet<&'static str>,
    /// The connections the configuration defines; `None`: not checked (a registry
    /// built without a configuration, as in unit tests).
    connections: Option<BTreeSet<String>>,
    /// The pools the configuration defines, with their slots; `None`: not checked.
    pools: Option<BTreeMap<String, u32>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// An empty registry, for the binary (or a test) to register its kinds on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `T` under `kind`; a later registration of the same name replaces it.
    pub fn register<T: TaskConfig>(&mut self, kind: &'static str) -> &mut Self {
        self.inline_files.insert(kind, T::INLINE_FILES);
        if T::READS_UPSTREAM {
            self.reads_upstream.insert(kind);
        }
        self.kinds.insert(
            kind,
            Box::new(|params: &Value| {
                let config: T = serde_path_to_error::deserialize(params).map_err(|e| {
                    let path = e.path().iter().map(|s| s.to_string()).collect();
                    ParamError {
                        path,
                        message: e.into_inner().to_string(),
                    }
                })?;
                config.validate()?;
                let connections = config.connections();
                Ok((Box::new(config) as Box<dyn Task>, connections))
            }),
        );
        self
    }

    /// Checks every connection a task names against `names`, so that a DAG naming one
    /// the configuration lacks fails to load with the param's place.
    pub fn with_connections(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.connections = Some(names.into_iter().collect());
        self
    }

    /// Checks every pool a task names, and the slots it asks for, against `pools`.
    pub fn with_pools(mut self, pools: impl IntoIterator<Item = (String, u32)>) -> Self {
        self.pools = Some(pools.into_iter().collect());
        self
    }

    /// The pools the configuration defines, with their slots; `None` when this registry
    /// does not check them.
    pub fn pools(&self) -> Option<&BTreeMap<String, u32>> {
        self.pools.as_ref()
    }

    /// The connections the configuration defines; `None` when this registry does not
    /// check them.
    pub fn connection_names(&self) -> Option<&BTreeSet<String>> {
        self.connections.as_ref()
    }

    /// Whether `kind` is registered, so DAG loading can reject unknown kinds early.
    pub fn contains(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    /// The params of `kind` that name a file read at load time, with the param each
    /// file's text goes into ([`TaskConfig::INLINE_FILES`]).
    pub fn inline_files(&self, kind: &str) -> &'static [InlineFile] {
        self.inline_files.get(kind).copied().unwrap_or_default()
    }

    /// Whether `kind` reads its upstream outputs itself ([`TaskConfig::READS_UPSTREAM`]).
    pub fn reads_upstream(&self, kind: &str) -> bool {
        self.reads_upstream.contains(kind)
    }

    /// The registered names, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// Builds a runnable task of `kind` from its params. `None` if the kind is unknown.
    pub fn build(&self, kind: &str, params: &Value) -> Option<Result<Box<dyn Task>, ParamError>> {
        let build = self.kinds.get(kind)?;
        Some(build(params).and_then(|(task, named)| {
            if let Some(known) = &self.connections {
                for (path, name) in named {
                    if !known.contains(&name) {
                        let defined: Vec<&str> = known.iter().map(String::as_str).collect();
                        return Err(ParamError::at(
                            path,
                            format!(
                                "no connection named `{name}` (defined: {})",
                                if defined.is_empty() {
                                    "none".to_string()
                                } else {
                                    defined.join(", ")
                                }
                            ),
                        ));
                    }
                }
            }
            Ok(task)
        }))
    }
}
