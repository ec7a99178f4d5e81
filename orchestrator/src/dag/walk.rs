//! Reading a spanned TOML table while collecting every problem instead of stopping at
//! the first, which is what serde's `deny_unknown_fields` would do.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Diagnostic;

/// Collects diagnostics for one file.
pub struct Walker<'a> {
    /// The file being read, named in every diagnostic.
    pub file: &'a Path,
    /// The file's text, to turn byte spans into lines and columns.
    pub src: &'a str,
    /// The problems found so far, reported together once the file is read.
    pub errors: Vec<Diagnostic>,
}

/// A value and where it was written.
pub type At<T> = (T, Range<usize>);

impl<'a> Walker<'a> {
    /// A walker over `src` with no problems found yet.
    pub fn new(file: &'a Path, src: &'a str) -> Self {
        Self {
            file,
            src,
            errors: Vec::new(),
        }
    }

    /// Records a problem at `span` and carries on, so one file reports all its problems.
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::at(self.file, self.src, span, message));
    }

    /// Reports each key of `table` that is not in `allowed`.
    pub fn reject_unknown_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], section: &str) {
        for key in table.keys() {
            if !allowed.contains(&key.get_ref().as_ref()) {
                self.error(
                    key.span(),
                    format!(
                        "unknown key `{}` in {section} (expected one of: {})",
                        key.get_ref(),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn typed<'t, T>(
        &mut self,
        table: &'t DeTable<'_>,
        key: &str,
        section: &str,
        expected: &str,
        read: impl FnOnce(&'t DeValue<'_>) -> Option<T>,
    ) -> Option<At<T>> {
        let value: &Spanned<DeValue<'_>> = table.get(key)?;
        match read(value.get_ref()) {
            Some(v) => Some((v, value.span())),
            None => {
                self.error(
                    value.span(),
                    format!(
                        "`{key}` in {section} must be {expected}, found {}",
                        value.get_ref().type_str()
                    ),
                );
                None
            }
        }
    }

    /// The `params` table of `table` as JSON: an empty object when absent, and
    /// a diagnostic (and an empty object) when it is not a table.
    pub fn params_table(&mut self, table: &DeTable<'_>, section: &str) -> serde_json::Value {
        match table.get("params") {
            Some(v) if !v.get_ref().is_table() => {
                self.error(
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
        }
    }

    /// The string at `key`, or a diagnostic if it holds another type.
    pub fn string(&mut self, table: &DeTable<'_>, key: &str, section: &str) -> Option<At<String>> {
        self.typed(table, key, section, "a string", |v| {
            v.as_str().map(String::from)
        })
    }

    /// The boolean at `key`, or a diagnostic if it holds another type.
    pub fn boolean(&mut self, table: &DeTable<'_>, key: &str, section: &str) -> Option<At<bool>> {
        self.typed(table, key, section, "a boolean", |v| v.as_bool())
    }

    /// A non-negative integer that fits in `u32`.
    pub fn count(&mut self, table: &DeTable<'_>, key: &str, section: &str) -> Option<At<u32>> {
        let (n, span) = self.typed(table, key, section, "an integer", |v| {
            v.as_integer()
                .map(|i| i64::from_str_radix(i.as_str(), i.radix()).ok())
        })?;
        match n.and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some((n, span)),
            None => {
                self.error(
                    span,
                    format!(
                        "`{key}` in {section} must be a whole number from 0 to {}",
                        u32::MAX
                    ),
                );
                None
            }
        }
    }

    /// An integer that fits in `i32` (a priority), negative or not.
    pub fn integer(&mut self, table: &DeTable<'_>, key: &str, section: &str) -> Option<At<i32>> {
        let (n, span) = self.typed(table, key, section, "an integer", |v| {
            v.as_integer()
                .map(|i| i64::from_str_radix(i.as_str(), i.radix()).ok())
        })?;
        match n.and_then(|n| i32::try_from(n).ok()) {
            Some(n) => Some((n, span)),
            None => {
                self.error(
                    span,
                    format!(
                        "`{key}` in {section} must be a whole number from {} to {}",
                        i32::MIN,
                        i32::MAX
                    ),
                );
                None
            }
        }
    }

    /// An array of strings, each with its own span.
    pub fn strings(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        section: &str,
    ) -> Option<Vec<At<String>>> {
        let value = table.get(key)?;
        let Some(items) = value.get_ref().as_array() else {
            self.error(
                value.span(),
                format!(
                    "`{key}` in {section} must be an array of strings, found {}",
                    value.get_ref().type_str()
                ),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.get_ref().as_str() {
                Some(s) => out.push((s.to_string(), item.span())),
                None => self.error(
                    item.span(),
                    format!(
                        "`{key}` in {section} must hold only strings, found {}",
                        item.get_ref().type_str()
                    ),
                ),
            }
        }
        Some(out)
    }

    /// A duration written as people write them: "30s", "5m", "1h 30m".
    pub fn duration(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        section: &str,
    ) -> Option<At<Duration>> {
        let (text, span) = self.string(table, key, section)?;
        match humantime::parse_duration(&text) {
            Ok(d) => Some((d, span)),
            Err(e) => {
                self.error(
                    span,
                    format!("invalid duration \"{text}\" for `{key}` in {section}: {e} (write e.g. \"30s\", \"5m\", \"1h 30m\")"),
                );
                None
            }
        }
    }
}

/// TOML to JSON, for a task's params. Datetimes become their RFC 3339 text.
pub fn to_json(value: &DeValue<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(J::from)
            .unwrap_or_else(|_| J::String(i.to_string())),
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(J::Null, J::Number),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(items) => J::Array(items.iter().map(|v| to_json(v.get_ref())).collect()),
        DeValue::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.get_ref().to_string(), to_json(v.get_ref())))
                .collect(),
        ),
    }
}

/// The span of the value at `path` inside `value`, or the deepest part of it that
/// exists (a missing field is reported at its table).
pub fn span_of_path(value: &Spanned<DeValue<'_>>, path: &[String]) -> Range<usize> {
    let mut here = value;
    for segment in path {
        let next = match here.get_ref() {
            DeValue::Table(t) => t
                .iter()
                .find(|(k, _)| k.get_ref() == segment)
                .map(|(_, v)| v),
            DeValue::Array(a) => segment.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(v) => here = v,
            None => break,
        }
    }
    here.span()
}

/// The span of `key` itself inside `table`, if present.
pub fn key_span(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    table.keys().find(|k| k.get_ref() == key).map(|k| k.span())
}
