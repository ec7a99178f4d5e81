//! `setlist airflow import DIR`: reads a folder of Airflow DAG files with Airflow's own
//! parser (`dagbag.py`, run by an Airflow installation's Python), writes one TOML file
//! per DAG with what Setlist can run, and reports what came over fully, partly or not
//! at all, and why. A task that cannot come over keeps its place as a `noop` with the
//! reason beside it, so the graph, the trigger rules and the schedule stay whole; every
//! file written loads (a task whose params would not load becomes such a `noop` too).

pub mod translate;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use orchestrator::Registry;
use serde::Deserialize;
use serde_json::Value;
use translate::{AfDag, Fidelity, Translated};

const DAGBAG: &str = include_str!("dagbag.py");

/// What `dagbag.py` wrote.
#[derive(Debug, Deserialize)]
struct Bag {
    dags: Vec<AfDag>,
    import_errors: Vec<ImportError>,
}

/// A DAG file Airflow itself could not load.
#[derive(Debug, Clone, Deserialize)]
pub struct ImportError {
    /// The file.
    pub file: String,
    /// Airflow's last line about it.
    pub error: String,
}

/// What became of one DAG.
#[derive(Debug, Clone)]
pub struct DagReport {
    /// The DAG's id.
    pub id: String,
    /// The Airflow file it came from.
    pub source: String,
    /// The file written, or `None` when none could be.
    pub written: Option<PathBuf>,
    /// Each task: its id and how much of it came over.
    pub tasks: Vec<(String, Fidelity)>,
    /// What of the DAG itself did not come over (a timetable Setlist has no form for).
    pub notes: Vec<String>,
}

impl DagReport {
    /// Tasks that came over fully, partly and not at all.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for (_, f) in &self.tasks {
            match f {
                Fidelity::Full => c.0 += 1,
                Fidelity::Partly(_) => c.1 += 1,
                Fidelity::Not(_) => c.2 += 1,
            }
        }
        c
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Each DAG Airflow loaded.
    pub dags: Vec<DagReport>,
    /// Each file Airflow could not load.
    pub import_errors: Vec<ImportError>,
}

/// Reads `dir` with `python` (an Airflow installation's interpreter) and writes one
/// TOML file per DAG into `out`; `registry` checks that each file loads.
pub fn import(
    python: &Path,
    dir: &Path,
    out: &Path,
    registry: &Registry,
) -> anyhow::Result<Report> {
    let scratch = tempfile::tempdir().context("Failed to make a scratch folder")?;
    let script = scratch.path().join("dagbag.py");
    std::fs::write(&script, DAGBAG)?;
    let answer = scratch.path().join("dags.json");
    let ran = std::process::Command::new(python)
        .arg(&script)
        .arg(dir)
        .arg(&answer)
        .env("AIRFLOW_HOME", scratch.path().join("airflow"))
        .output()
        .with_context(|| {
            format!(
                "Failed to start {} (give an Airflow installation's python with --python)",
                python.display()
            )
        })?;
    if !ran.status.success() {
        let stderr = String::from_utf8_lossy(&ran.stderr);
        let tail: Vec<&str> = stderr
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "Airflow's parser failed on {}:\n{}",
            dir.display(),
            tail.join("\n")
        );
    }
    let bag: Bag =
        serde_json::from_slice(&std::fs::read(&answer)?).context("what dagbag.py wrote")?;
    std::fs::create_dir_all(out).with_context(|| format!("Failed to make {}", out.display()))?;
    let mut report = Report {
        import_errors: bag.import_errors,
        ..Report::default()
    };
    for dag in &bag.dags {
        report.dags.push(write_dag(dag, out, registry)?);
    }
    Ok(report)
}

/// Translates one DAG, turning tasks whose params do not load into placeholders until
/// the file loads, and writes it.
fn write_dag(dag: &AfDag, out: &Path, registry: &Registry) -> anyhow::Result<DagReport> {
    let mut downstream: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for t in &dag.tasks {
        for u in &t.upstream {
            downstream.entry(u.as_str()).or_default().push(t.id.clone());
        }
    }
    let mut tasks: Vec<Translated> = dag
        .tasks
        .iter()
        .map(|t| translate::task(t, downstream.get(t.id.as_str()).map_or(&[][..], |d| d)))
        .collect();
    let mut notes = Vec::new();
    let file = out.join(format!("{}.toml", dag.id));
    for _ in 0..=dag.tasks.len() {
        let text = render(dag, &tasks, &mut notes);
        match orchestrator::dag::parse_dag(&file, &text, registry) {
            Ok(_) => {
                std::fs::write(&file, text)
                    .with_context(|| format!("Failed to write {}", file.display()))?;
                return Ok(report(dag, Some(file), tasks, notes));
            }
            Err(errors) => {
                let mut changed = false;
                for e in &errors {
                    let named = dag
                        .tasks
                        .iter()
                        .position(|t| e.message.contains(&format!("task `{}`", t.id)));
                    if let Some(i) = named
                        && !matches!(tasks[i].fidelity, Fidelity::Not(_))
                    {
                        tasks[i] = Translated::placeholder(format!(
                            "its params would not load: {}",
                            e.message
                        ));
                        changed = true;
                    }
                }
                if !changed {
                    notes.push(format!(
                        "not written: {}",
                        errors
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                    return Ok(report(dag, None, tasks, notes));
                }
            }
        }
    }
    unreachable!("each round turns one more task into a placeholder")
}

/// What became of `dag`: the file written (if one was) and each task's fidelity.
fn report(
    dag: &AfDag,
    written: Option<PathBuf>,
    tasks: Vec<Translated>,
    notes: Vec<String>,
) -> DagReport {
    DagReport {
        id: dag.id.clone(),
        source: dag.file.clone(),
        written,
        tasks: dag
            .tasks
            .iter()
            .map(|t| t.id.clone())
            .zip(tasks.into_iter().map(|t| t.fidelity))
            .collect(),
        notes,
    }
}

/// A TOML value written inline.
fn inline(v: &Value) -> String {
    match toml::Value::try_from(v) {
        Ok(t) => t.to_string(),
        Err(_) => toml::Value::String(v.to_string()).to_string(),
    }
}

/// The DAG file's text.
fn render(dag: &AfDag, tasks: &[Translated], notes: &mut Vec<String>) -> String {
    notes.clear();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Imported from {} by `setlist airflow import`.",
        dag.file
    );
    s += "[dag]\n";
    let _ = writeln!(s, "id = {}", inline(&Value::String(dag.id.clone())));
    if let Some(d) = dag.description.as_ref().filter(|d| !d.is_empty()) {
        let _ = writeln!(s, "description = {}", inline(&Value::String(d.clone())));
    }
    if !dag.tags.is_empty() {
        let _ = writeln!(s, "tags = {}", inline(&serde_json::json!(dag.tags)));
    }
    match (&dag.schedule.get("cron"), dag.schedule.get("none")) {
        (Some(Value::String(cron)), _) => {
            let _ = writeln!(s, "schedule = {}", inline(&Value::String(cron.clone())));
            if let Some(tz) = dag
                .schedule
                .get("timezone")
                .and_then(Value::as_str)
                .filter(|tz| *tz != "UTC")
            {
                let _ = writeln!(s, "timezone = {}", inline(&Value::String(tz.into())));
            }
        }
        (_, Some(_)) => {}
        _ => notes.push(format!(
            "its schedule ({}) has no Setlist form: the DAG is manual",
            dag.schedule
        )),
    }
    if let Some(start) = &dag.start_date {
        let _ = writeln!(s, "start_date = {}", inline(&Value::String(start.clone())));
    }
    let _ = writeln!(s, "catchup = {}", dag.catchup);
    if let Some(n) = dag.max_active_runs.filter(|n| *n > 0) {
        let _ = writeln!(s, "max_active_runs = {n}");
    }
    let params: serde_json::Map<String, Value> = dag
        .params
        .iter()
        .filter(|(_, v)| !v.is_null() && v.get("repr").is_none())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !params.is_empty() {
        let _ = writeln!(s, "params = {}", inline(&Value::Object(params)));
    }
    for (t, x) in dag.tasks.iter().zip(tasks) {
        s += "\n[[task]]\n";
        match &x.fidelity {
            Fidelity::Full => {}
            Fidelity::Partly(why) => {
                let _ = writeln!(s, "# partly: {}", why.replace('\n', " "));
            }
            Fidelity::Not(why) => {
                let _ = writeln!(
                    s,
                    "# not translated ({}): {}",
                    t.operator,
                    why.replace('\n', " ")
                );
            }
        }
        let _ = writeln!(s, "id = {}", inline(&Value::String(t.id.clone())));
        let _ = writeln!(s, "kind = {}", inline(&Value::String(x.kind.clone())));
        if let Some(g) = &t.group {
            // Airflow's nested groups are "outer.inner": one Setlist group each.
            let _ = writeln!(s, "group = {}", inline(&Value::String(g.clone())));
        }
        if !t.upstream.is_empty() {
            let _ = writeln!(s, "depends_on = {}", inline(&serde_json::json!(t.upstream)));
        }
        if let Some(r) = t.retries.filter(|r| *r > 0) {
            let _ = writeln!(s, "retries = {r}");
            if let Some(d) = translate::duration(t.retry_delay.as_ref()) {
                let _ = writeln!(s, "retry_delay = {}", inline(&Value::String(d)));
            }
            if t.retry_exponential_backoff {
                s += "retry_backoff = true\n";
            }
            if let Some(d) = translate::duration(t.max_retry_delay.as_ref()) {
                let _ = writeln!(s, "max_retry_delay = {}", inline(&Value::String(d)));
            }
        }
        if let Some(d) = translate::duration(t.execution_timeout.as_ref()) {
            let _ = writeln!(s, "timeout = {}", inline(&Value::String(d)));
        }
        for (key, value) in &x.keys {
            let _ = writeln!(s, "{key} = {}", inline(value));
        }
        if !x.params.is_empty() {
            let _ = writeln!(s, "params = {}", inline(&Value::Object(x.params.clone())));
        }
    }
    s
}

/// The report as a table: per DAG, its tasks full/partly/not, then every reason.
pub fn print(report: &Report) -> String {
    let mut s = String::new();
    let (mut full, mut partly, mut not, mut whole) = (0, 0, 0, 0);
    let _ = writeln!(
        s,
        "{:<50} {:>5} {:>6} {:>4}  FILE",
        "DAG", "FULL", "PARTLY", "NOT"
    );
    for d in &report.dags {
        let (f, p, n) = d.counts();
        (full, partly, not) = (full + f, partly + p, not + n);
        if p == 0 && n == 0 && d.notes.is_empty() && d.written.is_some() {
            whole += 1;
        }
        let written = d
            .written
            .as_ref()
            .map_or("(not written)".into(), |w| w.display().to_string());
        let _ = writeln!(s, "{:<50} {f:>5} {p:>6} {n:>4}  {written}", d.id);
    }
    let _ = writeln!(
        s,
        "\n{} DAGs ({whole} whole), {} tasks: {full} fully, {partly} partly, {not} not at all; {} files Airflow could not load.",
        report.dags.len(),
        full + partly + not,
        report.import_errors.len()
    );
    for d in &report.dags {
        for note in &d.notes {
            let _ = writeln!(s, "{} ({}): {note}", d.id, d.source);
        }
        for (task, f) in &d.tasks {
            match f {
                Fidelity::Full => {}
                Fidelity::Partly(why) => {
                    let _ = writeln!(s, "{}.{task}: partly: {why}", d.id);
                }
                Fidelity::Not(why) => {
                    let _ = writeln!(s, "{}.{task}: not: {why}", d.id);
                }
            }
        }
    }
    for e in &report.import_errors {
        let _ = writeln!(s, "{}: Airflow could not load it: {}", e.file, e.error);
    }
    s
}
