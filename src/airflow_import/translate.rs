//! One Airflow task or DAG, as `dagbag.py` describes it, in Setlist's TOML: which kind
//! runs it and with what params, or why nothing does.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A DAG as `dagbag.py` writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct AfDag {
    /// The DAG id.
    pub id: String,
    /// The Airflow file it came from.
    pub file: String,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its timetable: `cron` (and `timezone`), `none`, `every` or `other`.
    pub schedule: Value,
    /// Its start date, ISO 8601.
    #[serde(default)]
    pub start_date: Option<String>,
    /// Whether it catches up.
    #[serde(default)]
    pub catchup: bool,
    /// Its max_active_runs.
    #[serde(default)]
    pub max_active_runs: Option<u32>,
    /// Its params, by name.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Its tasks.
    pub tasks: Vec<AfTask>,
}

/// A task as `dagbag.py` writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct AfTask {
    /// The task id.
    pub id: String,
    /// The operator class.
    pub operator: String,
    /// The operator class and its bases, nearest first.
    #[serde(default)]
    pub mro: Vec<String>,
    /// Its upstream task ids.
    #[serde(default)]
    pub upstream: Vec<String>,
    /// Its trigger rule, as Airflow names it.
    #[serde(default)]
    pub trigger_rule: String,
    /// Its retries.
    #[serde(default)]
    pub retries: Option<i64>,
    /// Its retry delay, `{"seconds": x}`.
    #[serde(default)]
    pub retry_delay: Option<Value>,
    /// Whether its retries back off.
    #[serde(default)]
    pub retry_exponential_backoff: bool,
    /// The longest retry delay.
    #[serde(default)]
    pub max_retry_delay: Option<Value>,
    /// Its execution timeout.
    #[serde(default)]
    pub execution_timeout: Option<Value>,
    /// Its task group's id.
    #[serde(default)]
    pub group: Option<String>,
    /// The operator's fields that Setlist reads.
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// Its Python callable, if it has one.
    #[serde(default)]
    pub callable: Option<Callable>,
    /// A sensor's poke interval.
    #[serde(default)]
    pub poke_interval: Option<Value>,
    /// A sensor's timeout.
    #[serde(default)]
    pub timeout: Option<Value>,
    /// A mapped operator's expanded arguments.
    #[serde(default)]
    pub mapped: Option<Map<String, Value>>,
    /// Its priority_weight (Airflow's default: 1).
    #[serde(default)]
    pub priority_weight: Option<i64>,
}

/// A Python callable: where it is and whether another process can import it.
#[derive(Debug, Clone, Deserialize)]
pub struct Callable {
    /// Its module.
    pub module: String,
    /// Its qualified name.
    pub name: Option<String>,
    /// Its source file.
    pub file: Option<String>,
    /// Its first line.
    pub line: Option<u32>,
    /// Whether another process can import it.
    pub importable: bool,
}

/// How much of a task came over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fidelity {
    /// All of it.
    Full,
    /// It runs, but something differs (said here).
    Partly(String),
    /// A `noop` stands in its place (and why).
    Not(String),
}

/// A task in Setlist's terms.
#[derive(Debug, Clone)]
pub struct Translated {
    /// The Setlist kind.
    pub kind: String,
    /// Its params.
    pub params: Map<String, Value>,
    /// More `[[task]]` keys: `branch`, `map_over`.
    pub keys: Vec<(String, Value)>,
    /// How much came over.
    pub fidelity: Fidelity,
}

impl Translated {
    fn new(kind: &str, params: Value) -> Self {
        Self {
            kind: kind.into(),
            params: params.as_object().cloned().unwrap_or_default(),
            keys: Vec::new(),
            fidelity: Fidelity::Full,
        }
    }

    /// A `noop` that keeps the task's place in the graph.
    pub fn placeholder(why: impl Into<String>) -> Self {
        Self {
            kind: "noop".into(),
            params: Map::new(),
            keys: Vec::new(),
            fidelity: Fidelity::Not(why.into()),
        }
    }

    fn partly(mut self, why: impl Into<String>) -> Self {
        self.fidelity = match self.fidelity {
            Fidelity::Partly(earlier) => Fidelity::Partly(format!("{earlier}; {}", why.into())),
            _ => Fidelity::Partly(why.into()),
        };
        self
    }
}

/// A duration as Setlist writes it, from `{"seconds": x}`.
pub fn duration(v: Option<&Value>) -> Option<String> {
    let secs = v?.get("seconds")?.as_f64()?;
    (secs > 0.0).then(|| {
        if secs.fract() == 0.0 {
            format!("{}s", secs as u64)
        } else {
            format!("{}ms", (secs * 1000.0).round() as u64)
        }
    })
}

fn text(fields: &Map<String, Value>, key: &str) -> Option<String> {
    fields.get(key).and_then(Value::as_str).map(String::from)
}

fn is(t: &AfTask, class: &str) -> bool {
    t.operator == class || t.mro.iter().any(|c| c == class)
}

/// The Python that calls an importable callable and prints its result as JSON.
fn call(c: &Callable, t: &AfTask) -> String {
    let name = c.name.clone().unwrap_or_default();
    let args = t.fields.get("op_args").cloned().unwrap_or(json!([]));
    let kwargs = t.fields.get("op_kwargs").cloned().unwrap_or(json!({}));
    format!(
        "import json\nfrom {} import {name}\nresult = {name}(*json.loads({:?}), **json.loads({:?}))\nprint(json.dumps(result, default=str))\n",
        c.module,
        args.to_string(),
        kwargs.to_string()
    )
}

fn where_(c: &Callable) -> String {
    match (&c.file, c.line) {
        (Some(f), Some(l)) => format!("{f}:{l}"),
        (Some(f), None) => f.clone(),
        _ => c.module.clone(),
    }
}

/// The kind and params for one Airflow task; `downstream` are its direct downstream
/// tasks (a short circuit follows them all or none).
pub fn task(t: &AfTask, downstream: &[String]) -> Translated {
    let mut out = operator(t, downstream);
    if let Some(w) = t.priority_weight.filter(|w| *w != 1) {
        out.keys.push(("priority".into(), Value::from(w)));
    }
    let (rule, differs) = trigger_rule(&t.trigger_rule);
    if rule != "all_success" {
        out.keys
            .push(("trigger_rule".into(), Value::String(rule.into())));
    }
    if let (Some(why), false) = (differs, matches!(out.fidelity, Fidelity::Not(_))) {
        out = out.partly(why);
    }
    if out.kind.starts_with("wait_") {
        if let Some(p) = duration(t.poke_interval.as_ref()) {
            out.params.insert("poke_interval".into(), Value::String(p));
        }
        if let Some(p) = duration(t.timeout.as_ref()) {
            out.params.insert("timeout".into(), Value::String(p));
        }
    }
    if let (Some(mapped), Fidelity::Full | Fidelity::Partly(_)) = (&t.mapped, &out.fidelity) {
        out = map(out, mapped);
    }
    out
}

fn operator(t: &AfTask, downstream: &[String]) -> Translated {
    let f = &t.fields;
    if is(t, "EmptyOperator") {
        return Translated::new("noop", json!({}));
    }
    if is(t, "BashOperator") && t.operator != "_BashDecoratedOperator" {
        let Some(command) = text(f, "bash_command") else {
            return Translated::placeholder("its bash_command is not a string");
        };
        let mut p = json!({ "command": command });
        if let Some(env) = f.get("env").filter(|e| e.is_object()) {
            p["env"] = env.clone();
        }
        if let Some(cwd) = text(f, "cwd") {
            p["cwd"] = Value::String(cwd);
        }
        return Translated::new("shell", p);
    }
    if is(t, "SQLExecuteQueryOperator") {
        let sql = match f.get("sql") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(";\n"),
            _ => return Translated::placeholder("its sql is neither a string nor a list"),
        };
        let key = if sql.trim_end().ends_with(".sql") {
            "file"
        } else {
            "sql"
        };
        let mut p = json!({ key: sql });
        if let Some(conn) = text(f, "conn_id") {
            p["connection"] = Value::String(conn);
        }
        let out = Translated::new("sql", p);
        return if f.get("parameters").is_some_and(|v| !v.is_null()) {
            out.partly("its `parameters` are not bound: render them into the SQL")
        } else {
            out
        };
    }
    if is(t, "HttpOperator") || is(t, "HttpSensor") {
        let mut p = json!({
            "connection": text(f, "http_conn_id").unwrap_or_else(|| "http_default".into()),
            "endpoint": text(f, "endpoint").unwrap_or_default(),
            "method": text(f, "method").unwrap_or_else(|| "GET".into()).to_uppercase(),
        });
        if let Some(h) = f
            .get("headers")
            .filter(|h| h.as_object().is_some_and(|m| !m.is_empty()))
        {
            p["headers"] = h.clone();
        }
        match f.get("data") {
            Some(Value::String(s)) => p["body"] = Value::String(s.clone()),
            Some(v @ Value::Object(_)) => p["json"] = v.clone(),
            _ => {}
        }
        let kind = if is(t, "HttpSensor") {
            "wait_http"
        } else {
            "http"
        };
        let out = Translated::new(kind, p);
        return match &t.callable {
            Some(_) => out
                .partly("its response_check is Python: write it as a `response_check` expression"),
            None => out,
        };
    }
    if is(t, "S3KeySensor") {
        let key = match f.get("bucket_key") {
            Some(Value::String(k)) => k.clone(),
            Some(Value::Array(k)) if k.len() == 1 => k[0].as_str().unwrap_or_default().to_string(),
            _ => return Translated::placeholder("it waits for several keys at once"),
        };
        let (store, key) = match (text(f, "bucket_name"), key.strip_prefix("s3://")) {
            (Some(bucket), _) => (format!("s3://{bucket}"), key),
            (None, Some(rest)) => {
                let (bucket, k) = rest.split_once('/').unwrap_or((rest, ""));
                (format!("s3://{bucket}"), k.to_string())
            }
            (None, None) => return Translated::placeholder("its bucket is not named"),
        };
        let mut p = json!({ "store": store });
        let wildcard = f
            .get("wildcard_match")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut out = if wildcard {
            let prefix = key.split(['*', '?']).next().unwrap_or_default().to_string();
            p["prefix"] = Value::String(prefix);
            Translated::new("wait_object", p).partly("its wildcard became the prefix before it")
        } else {
            p["key"] = Value::String(key);
            Translated::new("wait_object", p)
        };
        if let Some(conn) = text(f, "aws_conn_id") {
            out.params.insert("connection".into(), Value::String(conn));
        }
        return out;
    }
    if is(t, "FileSensor") {
        let Some(path) = text(f, "filepath") else {
            return Translated::placeholder("its filepath is not a string");
        };
        let (store, key) = match path.strip_prefix('/') {
            Some(rest) => ("/".to_string(), rest.to_string()),
            None => (".".to_string(), path.clone()),
        };
        return Translated::new("wait_object", json!({ "store": store, "key": key }));
    }
    if is(t, "SqlSensor") {
        let mut p = json!({ "sql": text(f, "sql").unwrap_or_default() });
        if let Some(conn) = text(f, "conn_id") {
            p["connection"] = Value::String(conn);
        }
        return Translated::new("wait_sql", p);
    }
    if is(t, "ExternalTaskSensor") {
        let Some(dag) = text(f, "external_dag_id") else {
            return Translated::placeholder("its external_dag_id is not a string");
        };
        let mut p = json!({ "dag_id": dag });
        if let Some(task) = text(f, "external_task_id") {
            p["task_id"] = Value::String(task);
        }
        if let Some(d) = duration(f.get("execution_delta")) {
            p["delta"] = Value::String(d);
        }
        return Translated::new("wait_run", p);
    }
    if is(t, "TimeDeltaSensor") {
        return match duration(f.get("delta")) {
            Some(d) => Translated::new("wait_until", json!({ "delta": d })),
            None => Translated::new("wait_until", json!({})),
        };
    }
    if is(t, "DateTimeSensor") {
        return match text(f, "target_time") {
            Some(at) => Translated::new("wait_until", json!({ "target_time": at })),
            None => Translated::placeholder("its target_time is not a string"),
        };
    }
    if is(t, "TriggerDagRunOperator") {
        let Some(dag) = text(f, "trigger_dag_id") else {
            return Translated::placeholder("its trigger_dag_id is not a string");
        };
        let mut p = json!({ "dag_id": dag, "wait": f.get("wait_for_completion").and_then(Value::as_bool).unwrap_or(false) });
        if let Some(conf) = f.get("conf").filter(|c| c.is_object()) {
            p["conf"] = conf.clone();
        }
        if let Some(poke) = duration(f.get("poke_interval")).or_else(|| {
            f.get("poke_interval")
                .and_then(Value::as_f64)
                .map(|s| format!("{}s", s as u64))
        }) {
            p["poke_interval"] = Value::String(poke);
        }
        return Translated::new("trigger_dag", p);
    }
    if is(t, "EmailOperator") {
        let to = match f.get("to") {
            Some(Value::String(s)) => json!(s.split([',', ';']).map(str::trim).collect::<Vec<_>>()),
            Some(v @ Value::Array(_)) => v.clone(),
            _ => json!([]),
        };
        let p = json!({
            "connection": text(f, "conn_id").unwrap_or_else(|| "smtp_default".into()),
            "to": to,
            "subject": text(f, "subject").unwrap_or_default(),
            "message": text(f, "html_content").unwrap_or_default(),
        });
        return Translated::new("notify", p).partly("the HTML body is sent as text");
    }
    if is(t, "SlackWebhookOperator") {
        let p = json!({
            "connection": text(f, "slack_webhook_conn_id").unwrap_or_else(|| "slack_default".into()),
            "message": text(f, "message").unwrap_or_default(),
        });
        return Translated::new("notify", p);
    }
    let python_like = [
        "PythonOperator",
        "_PythonDecoratedOperator",
        "ShortCircuitOperator",
        "BranchPythonOperator",
        "ExternalPythonOperator",
    ];
    if python_like.iter().any(|c| is(t, c)) && !is(t, "PythonVirtualenvOperator") {
        let Some(c) = &t.callable else {
            return Translated::placeholder("it names no callable");
        };
        if !c.importable {
            return Translated::placeholder(format!(
                "its callable `{}` is defined in the DAG file ({}): move it into an importable module for a `python` task",
                c.name.clone().unwrap_or_default(),
                where_(c)
            ));
        }
        let mut p = json!({ "code": call(c, t) });
        if let Some(py) = text(f, "python") {
            p["interpreter"] = Value::String(py);
        }
        let mut out = Translated::new("python", p);
        if is(t, "BranchPythonOperator") || t.operator.contains("Branch") {
            out.keys.push(("branch".into(), Value::Bool(true)));
        } else if is(t, "ShortCircuitOperator") || t.operator.contains("ShortCircuit") {
            let follow = serde_json::to_string(downstream).expect("strings");
            out.params.insert(
                "code".into(),
                Value::String(format!(
                    "{}follow = {follow} if result else []\nprint(json.dumps({{'follow': follow, 'condition': bool(result)}}))\n",
                    call(c, t).replace("print(json.dumps(result, default=str))\n", "")
                )),
            );
            out.keys.push(("branch".into(), Value::Bool(true)));
            out = out.partly("a false result skips the direct downstream tasks and trigger rules decide the rest (ignore_downstream_trigger_rules = false)");
        }
        return out;
    }
    Translated::placeholder(format!("Setlist has no kind for {}", t.operator))
}

/// Setlist's trigger rule for Airflow's, and what differs when it is not the same.
fn trigger_rule(airflow: &str) -> (&'static str, Option<String>) {
    // The rules both have, under the same names.
    if let Some(same) = orchestrator::trigger_rule::TriggerRule::NAMES
        .iter()
        .find(|r| **r == airflow)
    {
        return (same, None);
    }
    let near = match airflow {
        "" => return ("all_success", None),
        "none_failed_or_skipped" => "none_failed_min_one_success",
        "dummy" => "always",
        "all_done_setup_success" | "all_done_min_one_success" | "one_done" => "all_done",
        _ => "all_success",
    };
    (near, Some(format!("trigger rule {airflow} became {near}")))
}

/// A mapped operator: `map_over` its one expanded argument, which templates read as
/// `{{ element }}`.
fn map(mut out: Translated, mapped: &Map<String, Value>) -> Translated {
    if mapped.len() != 1 {
        return Translated::placeholder("it expands over several arguments at once");
    }
    let (name, over) = mapped.iter().next().expect("one");
    let map_over = match over {
        Value::Array(_) => over.clone(),
        Value::Object(x) if x.get("xcom").is_some_and(Value::is_string) => {
            json!(format!(
                "upstream.{}.output",
                x["xcom"].as_str().unwrap_or_default()
            ))
        }
        _ => {
            return Translated::placeholder(format!(
                "it expands `{name}` over something that is neither a list nor an upstream output"
            ));
        }
    };
    let target = match (out.kind.as_str(), name.as_str()) {
        ("shell", "bash_command") => Some("command"),
        ("sql", "sql") => Some("sql"),
        _ => None,
    };
    match target {
        Some(param) => {
            out.params
                .insert(param.into(), Value::String("{{ element }}".into()));
        }
        None => {
            out = out.partly(format!(
                "each instance gets its `{name}` as `{{{{ element }}}}`; use it in the params"
            ))
        }
    }
    out.keys.push(("map_over".into(), map_over));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn af(operator: &str, fields: Value) -> AfTask {
        serde_json::from_value(json!({ "id": "t", "operator": operator, "fields": fields }))
            .unwrap()
    }

    #[test]
    fn common_operators_find_their_kind() {
        let bash = task(
            &af("BashOperator", json!({ "bash_command": "echo {{ ds }}" })),
            &[],
        );
        assert_eq!(
            (bash.kind.as_str(), &bash.fidelity),
            ("shell", &Fidelity::Full)
        );
        assert_eq!(bash.params["command"], "echo {{ ds }}");
        let sql = task(
            &af(
                "SQLExecuteQueryOperator",
                json!({ "sql": "q.sql", "conn_id": "pg" }),
            ),
            &[],
        );
        assert_eq!(
            (
                sql.params["file"].as_str(),
                sql.params["connection"].as_str()
            ),
            (Some("q.sql"), Some("pg"))
        );
        let wait = task(
            &af(
                "ExternalTaskSensor",
                json!({ "external_dag_id": "up", "execution_delta": { "seconds": 3600.0 } }),
            ),
            &[],
        );
        assert_eq!(
            (wait.kind.as_str(), wait.params["delta"].as_str()),
            ("wait_run", Some("3600s"))
        );
        let s3 = task(
            &af(
                "S3KeySensor",
                json!({ "bucket_key": "s3://lake/raw/*.parquet", "wildcard_match": true }),
            ),
            &[],
        );
        assert_eq!(
            (s3.params["store"].as_str(), s3.params["prefix"].as_str()),
            (Some("s3://lake"), Some("raw/"))
        );
        let odd = task(&af("HITLOperator", json!({})), &[]);
        assert_eq!(
            odd.fidelity,
            Fidelity::Not("Setlist has no kind for HITLOperator".into())
        );
    }

    #[test]
    fn a_callable_in_the_dag_file_cannot_be_imported() {
        let mut t = af("PythonOperator", json!({}));
        t.callable = Some(Callable {
            module: "unusual_prefix_x".into(),
            name: Some("f".into()),
            file: Some("dag.py".into()),
            line: Some(12),
            importable: false,
        });
        let out = task(&t, &[]);
        assert!(
            matches!(&out.fidelity, Fidelity::Not(why) if why.contains("(dag.py:12)")),
            "{:?}",
            out.fidelity
        );
        t.callable = Some(Callable {
            module: "etl.jobs".into(),
            name: Some("load".into()),
            file: None,
            line: None,
            importable: true,
        });
        t.fields.insert("op_kwargs".into(), json!({ "day": "x" }));
        let out = task(&t, &[]);
        assert_eq!(out.kind, "python");
        assert!(
            out.params["code"]
                .as_str()
                .unwrap()
                .contains("from etl.jobs import load")
        );
    }

    #[test]
    fn a_mapped_bash_command_becomes_the_element() {
        let mut t = af("BashOperator", json!({ "bash_command": "x" }));
        t.mapped =
            Some(serde_json::from_value(json!({ "bash_command": ["echo 1", "echo 2"] })).unwrap());
        let out = task(&t, &[]);
        assert_eq!(out.params["command"], "{{ element }}");
        assert_eq!(
            out.keys,
            [("map_over".to_string(), json!(["echo 1", "echo 2"]))]
        );
    }
}
