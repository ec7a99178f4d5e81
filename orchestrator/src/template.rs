//! Templated params: a string anywhere in a task's params may use the run's context,
//! Jinja-style, as Airflow's templated fields do: `{{ ds }}`, `{{ data_interval_start }}`,
//! `{{ logical_date | date("%Y-%m-%d") }}`, `{{ run_id }}`, `{{ conf.region }}`,
//! `{{ params.x }}`, `{{ upstream.extract.output.rows }}`. Rendered with minijinja just
//! before an attempt, with undefined values an error, never an empty string.
//!
//! What can be known when the file is read is checked then ([`check`]): the syntax, that
//! every variable is one of the context's names, that `params.x` is one of the DAG's
//! params and that `upstream.t` is one of the task's own upstream tasks. What only the
//! run knows (a key of its conf, a field of an upstream output) fails the attempt with
//! the param's path and what was undefined. A string without `{{` or `{%` is left as
//! it is, so untemplated params cost nothing.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value;

use crate::registry::ParamError;

/// The names a template may use at its top level.
pub const NAMES: &[&str] = &[
    "dag_id",
    "run_id",
    "task_id",
    "try_number",
    "logical_date",
    "ds",
    "ds_nodash",
    "ts",
    "data_interval_start",
    "data_interval_end",
    "conf",
    "params",
    "upstream",
    "map_index",
    "element",
];

/// What a template sees: one attempt's run, its conf and params, and the outputs of its
/// task's upstream tasks.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    /// The DAG's id.
    pub dag_id: String,
    /// The run's id.
    pub run_id: i64,
    /// The task's id.
    pub task_id: String,
    /// The attempt's try number, from 1.
    pub try_number: i32,
    /// The run's logical date, RFC 3339 (`date` formats it).
    pub logical_date: String,
    /// The logical date's day, `YYYY-MM-DD`.
    pub ds: String,
    /// The same without dashes, `YYYYMMDD`.
    pub ds_nodash: String,
    /// The logical date, RFC 3339, as Airflow's `ts`.
    pub ts: String,
    /// Where the run's data interval starts, RFC 3339.
    pub data_interval_start: String,
    /// Where it ends (exclusive), RFC 3339.
    pub data_interval_end: String,
    /// The run's conf.
    pub conf: Value,
    /// The run's params ([`run_params`]).
    pub params: Value,
    /// Each upstream task's output, as `upstream.<task>.output`.
    pub upstream: BTreeMap<String, Upstream>,
    /// A mapped instance's index in its list (undefined for a task that is not mapped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_index: Option<i32>,
    /// A mapped instance's element (undefined for a task that is not mapped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element: Option<Value>,
}

/// One upstream task as a template sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    /// The output it ended with.
    pub output: Value,
}

impl Context {
    /// The context of one attempt.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dag_id: &str,
        run_id: i64,
        task_id: &str,
        try_number: i32,
        logical_date: DateTime<Utc>,
        data_interval: (DateTime<Utc>, DateTime<Utc>),
        conf: &Value,
        params: &Value,
        upstream_outputs: &BTreeMap<String, Value>,
    ) -> Self {
        let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        Self {
            dag_id: dag_id.to_string(),
            run_id,
            task_id: task_id.to_string(),
            try_number,
            logical_date: rfc(logical_date),
            ds: logical_date.format("%Y-%m-%d").to_string(),
            ds_nodash: logical_date.format("%Y%m%d").to_string(),
            ts: rfc(logical_date),
            data_interval_start: rfc(data_interval.0),
            data_interval_end: rfc(data_interval.1),
            conf: conf.clone(),
            params: params.clone(),
            upstream: upstream_outputs
                .iter()
                .map(|(t, o)| (t.clone(), Upstream { output: o.clone() }))
                .collect(),
            map_index: None,
            element: None,
        }
    }

    /// This context for mapped instance `index` with `element`.
    pub fn mapped(mut self, index: i32, element: Value) -> Self {
        self.map_index = Some(index);
        self.element = Some(element);
        self
    }
}

/// A run's params: the DAG's `[dag] params`, each replaced by the conf's value of that
/// name when it has one (Airflow's params with `dag_run_conf_overrides_params`). Fixed
/// when the run is created.
pub fn run_params(dag_params: &Value, conf: &Value) -> Value {
    let mut params = match dag_params {
        Value::Object(m) => m.clone(),
        _ => Default::default(),
    };
    if let Value::Object(c) = conf {
        for (k, v) in params.iter_mut() {
            if let Some(given) = c.get(k) {
                *v = given.clone();
            }
        }
    }
    Value::Object(params)
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // A multi-line param keeps its last newline, rendered or not.
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters"),
    );
    env.add_filter("date", date);
    env
});

/// `{{ logical_date | date("%Y-%m-%d %H:%M", "Europe/Berlin") }}`: an RFC 3339 time (or
/// a `YYYY-MM-DD` day, at midnight UTC) in chrono's format (`%Y-%m-%d` by default), in
/// an IANA timezone (UTC by default).
fn date(value: String, format: Option<String>, timezone: Option<String>) -> Result<String, Error> {
    let t = DateTime::parse_from_rfc3339(&value)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|e| {
            chrono::NaiveDate::parse_from_str(&value, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
                .map_err(|_| e)
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("date: {value:?} is not an RFC 3339 time or a YYYY-MM-DD day ({e})"),
            )
        })?;
    let format = format.unwrap_or_else(|| "%Y-%m-%d".into());
    let tz: chrono_tz::Tz = match &timezone {
        Some(name) => name.parse().map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("date: unknown timezone {name:?} (an IANA name such as \"Europe/Berlin\")"),
            )
        })?,
        None => chrono_tz::UTC,
    };
    let mut out = String::new();
    use std::fmt::Write;
    write!(out, "{}", t.with_timezone(&tz).format(&format)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("date: {format:?} is not a valid time format"),
        )
    })?;
    Ok(out)
}

/// Whether the Jinja expression `expression` (no braces: `response.json.state ==
/// "done"`, `rows > 0`) is true of `vars`, with Jinja's idea of truth and undefined
/// names an error. Used by conditions that look at what a task received (a
/// response, a query's first row), which the run's templates cannot see.
pub fn holds(expression: &str, vars: &Value) -> Result<bool, String> {
    let compiled = ENV
        .compile_expression(expression)
        .map_err(|e| format!("the expression {expression:?}: {}", describe(&e)))?;
    let value = compiled
        .eval(minijinja::Value::from(minijinja::value::Serde(vars)))
        .map_err(|e| format!("the expression {expression:?}: {}", describe(&e)))?;
    Ok(value.is_true())
}

/// Checks the syntax of a Jinja expression, for a kind's `validate`.
pub fn check_expression(expression: &str) -> Result<(), String> {
    ENV.compile_expression(expression)
        .map(|_| ())
        .map_err(|e| format!("the expression {expression:?}: {}", describe(&e)))
}

/// Whether `s` holds template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// Whether a templated string of `params` mentions `name` (`upstream`).
pub fn mentions(params: &Value, name: &str) -> bool {
    match params {
        Value::String(s) => is_template(s) && s.contains(name),
        Value::Array(items) => items.iter().any(|i| mentions(i, name)),
        Value::Object(map) => map.values().any(|v| mentions(v, name)),
        _ => false,
    }
}

/// Whether any string in `params` holds template syntax.
pub fn has_templates(params: &Value) -> bool {
    match params {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(has_templates),
        Value::Object(map) => map.values().any(has_templates),
        _ => false,
    }
}

/// Every templated string of `params` rendered with `context`; the rest as it is. The
/// error names the param's path and what went wrong.
pub fn render(params: &Value, context: &Context) -> Result<Value, ParamError> {
    let ctx = minijinja::Value::from(minijinja::value::Serde(context));
    let mut path = Vec::new();
    render_at(params, &ctx, &mut path)
}

fn render_at(
    value: &Value,
    ctx: &minijinja::Value,
    path: &mut Vec<String>,
) -> Result<Value, ParamError> {
    Ok(match value {
        Value::String(s) if is_template(s) => {
            Value::String(ENV.render_str(s, ctx).map_err(|e| ParamError {
                path: path.clone(),
                message: format!("template: {}", describe(&e)),
            })?)
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                out.push(render_at(item, ctx, path)?);
                path.pop();
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                path.push(k.clone());
                out.insert(k.clone(), render_at(v, ctx, path)?);
                path.pop();
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// A minijinja error in one line: its kind and detail, without the template's name.
fn describe(e: &Error) -> String {
    match e.detail() {
        Some(detail) => format!("{} ({detail})", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Checks every templated string of `params` as far as the file alone can tell: its
/// syntax, that each variable is a context name, that `params.x` is one of `dag_params`
/// and `upstream.t` one of `upstream`. One problem per string, at that string's path.
pub fn check(
    params: &Value,
    dag_params: &Value,
    upstream: &[String],
    mapped: bool,
) -> Vec<ParamError> {
    let mut problems = Vec::new();
    let mut path = Vec::new();
    let scope = Scope {
        dag_params,
        upstream,
        mapped,
    };
    check_at(params, &scope, &mut path, &mut problems);
    problems
}

/// What a task's templates may refer to.
struct Scope<'a> {
    dag_params: &'a Value,
    upstream: &'a [String],
    mapped: bool,
}

fn check_at(
    value: &Value,
    scope: &Scope<'_>,
    path: &mut Vec<String>,
    problems: &mut Vec<ParamError>,
) {
    match value {
        Value::String(s) if is_template(s) => {
            if let Err(message) = check_one(s, scope) {
                problems.push(ParamError {
                    path: path.clone(),
                    message,
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                check_at(item, scope, path, problems);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                check_at(v, scope, path, problems);
                path.pop();
            }
        }
        _ => {}
    }
}

fn check_one(source: &str, scope: &Scope<'_>) -> Result<(), String> {
    let (dag_params, upstream) = (scope.dag_params, scope.upstream);
    let template = ENV
        .template_from_str(source)
        .map_err(|e| format!("template: {}", describe(&e)))?;
    let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    names.sort();
    for name in names {
        let mut parts = name.split('.');
        let top = parts.next().unwrap_or_default();
        let second = parts.next();
        // minijinja's own functions (range, dict, namespace) are names too.
        if !NAMES.contains(&top) && !ENV.globals().any(|(g, _)| g == top) {
            return Err(format!(
                "template: unknown variable `{top}` (known: {})",
                NAMES.join(", ")
            ));
        }
        match (top, second) {
            ("map_index" | "element", _) if !scope.mapped => {
                return Err(format!(
                    "template: `{top}` is a mapped instance's; this task has no `map_over`"
                ));
            }
            ("params", Some(p)) if dag_params.get(p).is_none() => {
                return Err(format!(
                    "template: `params.{p}` is not one of the DAG's params (add it to [dag] params)"
                ));
            }
            ("upstream", Some(t)) if !upstream.iter().any(|u| u == t) => {
                return Err(format!(
                    "template: `upstream.{t}` is not one of this task's upstream tasks ({})",
                    if upstream.is_empty() {
                        "it has none".to_string()
                    } else {
                        upstream.join(", ")
                    }
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_expression_is_judged_over_what_a_task_received() {
        let vars = serde_json::json!({ "response": { "status": 200, "json": { "state": "done", "n": 3 } } });
        assert!(super::holds("response.json.state == 'done'", &vars).unwrap());
        assert!(super::holds("response.json.n > 2 and response.status == 200", &vars).unwrap());
        assert!(!super::holds("response.json.n > 5", &vars).unwrap());
        let e = super::holds("response.json.missing == 1", &vars).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
        assert!(super::check_expression("a ==").is_err());
    }

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn context() -> Context {
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 6, 0, 0).unwrap();
        Context::new(
            "daily",
            7,
            "load",
            2,
            start,
            (start, Utc.with_ymd_and_hms(2026, 3, 2, 6, 0, 0).unwrap()),
            &json!({ "region": "EU", "limit": 5 }),
            &run_params(
                &json!({ "limit": 10, "table": "plays" }),
                &json!({ "region": "EU", "limit": 5 }),
            ),
            &BTreeMap::from([("extract".to_string(), json!({ "rows": 42 }))]),
        )
    }

    #[test]
    fn strings_render_with_the_run_s_context_and_others_stay_as_they_are() {
        let params = json!({
            "sql": "select * from {{ params.table }} where day = '{{ ds }}' limit {{ params.limit }}",
            "args": ["{{ logical_date | date(\"%Y/%m/%d %H:%M\") }}", "{{ conf.region }}-{{ ds_nodash }}"],
            "note": "rows={{ upstream.extract.output.rows }} try={{ try_number }} run={{ run_id }}",
            "plain": "no {braces} here",
            "n": 3,
        });
        let out = render(&params, &context()).unwrap();
        assert_eq!(
            out,
            json!({
                "sql": "select * from plays where day = '2026-03-01' limit 5",
                "args": ["2026/03/01 06:00", "EU-20260301"],
                "note": "rows=42 try=2 run=7",
                "plain": "no {braces} here",
                "n": 3,
            })
        );
        assert_eq!(
            render(&json!({ "w": "{{ data_interval_end }}" }), &context()).unwrap()["w"],
            "2026-03-02T06:00:00Z"
        );
    }

    #[test]
    fn an_undefined_value_fails_with_the_param_s_path() {
        let e = render(&json!({ "args": ["ok", "{{ conf.missing }}"] }), &context()).unwrap_err();
        assert_eq!(e.path, ["args", "1"]);
        assert!(e.message.starts_with("template: undefined value"), "{e}");
        let e = render(&json!({ "x": "{{ conf.region | date }}" }), &context()).unwrap_err();
        assert!(
            e.message
                .contains("\"EU\" is not an RFC 3339 time or a YYYY-MM-DD day"),
            "{e}"
        );
        let e = render(&json!({ "x": "{{ ds | date(\"%Q\") }}" }), &context()).unwrap_err();
        assert!(
            e.message.contains("\"%Q\" is not a valid time format"),
            "{e}"
        );
        let day = render(&json!({ "x": "{{ ds | date(\"%d/%m\") }}" }), &context()).unwrap();
        assert_eq!(day["x"], "01/03");
        let local = render(
            &json!({ "x": "{{ logical_date | date(\"%H:%M %Z\", \"Europe/Berlin\") }}" }),
            &context(),
        )
        .unwrap();
        assert_eq!(local["x"], "07:00 CET");
        let raw = render(
            &json!({ "x": "{% raw %}{{.ID}}{% endraw %} {% for i in range(2) %}{{ i }}{% endfor %}\n" }),
            &context(),
        )
        .unwrap();
        assert_eq!(
            raw["x"], "{{.ID}} 01\n",
            "raw passes braces through, newlines stay"
        );
    }

    #[test]
    fn what_the_file_alone_can_tell_is_checked_when_it_loads() {
        let dag_params = json!({ "table": "plays" });
        let upstream = ["extract".to_string()];
        let check1 = |s: &str| {
            check(&json!({ "p": s }), &dag_params, &upstream, false)
                .first()
                .map(|e| e.message.clone())
        };
        assert_eq!(
            check1("{{ ds }} {{ conf.anything }} {{ upstream.extract.output.x }}"),
            None
        );
        assert_eq!(
            check1("{% for i in range(3) %}{{ i }}{% endfor %}{% set n = 2 %}{{ n }}"),
            None
        );
        assert!(
            check1("{{ dss }}")
                .unwrap()
                .starts_with("template: unknown variable `dss` (known: dag_id,")
        );
        assert_eq!(
            check1("{{ params.tabel }}").unwrap(),
            "template: `params.tabel` is not one of the DAG's params (add it to [dag] params)"
        );
        assert_eq!(
            check1("{{ upstream.load.output }}").unwrap(),
            "template: `upstream.load` is not one of this task's upstream tasks (extract)"
        );
        assert!(
            check1("{{ ds ")
                .unwrap()
                .starts_with("template: syntax error"),
            "{:?}",
            check1("{{ ds ")
        );
        assert!(!has_templates(&json!({ "a": ["b", 1], "c": "{d}" })));
        assert!(has_templates(&json!({ "a": ["{% if x %}"] })));
    }
}
