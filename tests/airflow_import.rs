//! `setlist airflow import` over the example DAGs that ship inside apache-airflow and
//! apache-airflow-providers-standard (the 3.3.2 virtualenv scripts/airflow.sh
//! installs), read by Airflow's own parser: every DAG gets a file, every file loads,
//! and what could not come over is named with its reason. The report it prints is the
//! one docs/airflow.md quotes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::airflow::airflow_bin;

fn python() -> PathBuf {
    airflow_bin().with_file_name("python")
}

fn examples(under: &str) -> PathBuf {
    let lib = airflow_bin()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("lib");
    let site = std::fs::read_dir(&lib)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("python3")
        })
        .expect("a python3.x folder")
        .join("site-packages");
    site.join(under)
}

fn import(dir: &Path, out: &Path) -> String {
    let ran = Command::new(env!("CARGO_BIN_EXE_setlist"))
        .args(["airflow", "import"])
        .arg(dir)
        .arg("--out")
        .arg(out)
        .arg("--python")
        .arg(python())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout).to_string();
    assert!(
        ran.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    stdout
}

#[test]
fn the_example_dags_of_airflow_and_its_standard_provider_come_over_and_every_file_loads() {
    let out = tempfile::tempdir().unwrap();
    let mut reports = String::new();
    for (name, dir) in [
        (
            "standard",
            examples("airflow/providers/standard/example_dags"),
        ),
        ("core", examples("airflow/example_dags")),
    ] {
        let report = import(&dir, &out.path().join(name));
        println!("== {name}\n{report}");
        reports += &report;
        let written: Vec<PathBuf> = std::fs::read_dir(out.path().join(name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let listed = report.lines().filter(|l| l.contains(".toml")).count();
        assert_eq!(written.len(), listed, "{report}");
        assert!(written.len() > 10, "{report}");
        // Every file written loads (connections are the configuration's to define).
        let bag = orchestrator::dag::load_dir(&out.path().join(name), &common::registry());
        assert!(bag.errors.is_empty(), "{:?}", bag.errors);
        assert_eq!(bag.dags.len(), written.len());
    }
    // What came over: the sensors and the trigger of the standard provider's examples.
    let sensors =
        std::fs::read_to_string(out.path().join("standard/example_sensors.toml")).unwrap();
    for kind in ["wait_until", "wait_object", "shell"] {
        assert!(sensors.contains(&format!("kind = \"{kind}\"")), "{sensors}");
    }
    let trigger = std::fs::read_to_string(
        out.path()
            .join("standard/example_trigger_controller_dag.toml"),
    )
    .unwrap();
    assert!(trigger.contains("kind = \"trigger_dag\""), "{trigger}");
    // What did not, and why: a callable in the DAG file, named with its file and line.
    assert!(
        reports.contains("is defined in the DAG file (")
            && reports.contains("example_branch_operator.py:"),
        "{reports}"
    );
    assert!(reports.contains("tasks: "), "{reports}");
}

#[test]
fn a_dag_file_airflow_cannot_load_is_reported_and_the_others_still_come_over() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.py"),
        "from airflow.sdk import DAG\nimport nonexistent_module_for_setlist\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("fine.py"),
        "import datetime\nfrom airflow.sdk import DAG\nfrom airflow.providers.standard.operators.bash import BashOperator\n\
         with DAG('fine', schedule='@daily', start_date=datetime.datetime(2026, 1, 1), catchup=False, default_args={'retries': 2}):\n    \
         a = BashOperator(task_id='a', bash_command='echo {{ ds }}')\n    b = BashOperator(task_id='b', bash_command='echo b', trigger_rule='all_done')\n    a >> b\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let report = import(dir.path(), out.path());
    assert!(
        report.contains("broken.py: Airflow could not load it:"),
        "{report}"
    );
    assert!(
        report.contains("No module named 'nonexistent_module_for_setlist'"),
        "{report}"
    );
    let fine =
        orchestrator::dag::load_file(&out.path().join("fine.toml"), &common::registry()).unwrap();
    assert_eq!(fine.schedule.expr(), Some("0 0 * * *"));
    let b = fine.task("b").unwrap();
    assert_eq!(
        (b.kind.as_str(), b.depends_on.as_slice(), b.retry.retries),
        ("shell", &["a".to_string()][..], 2)
    );
    assert_eq!(b.trigger_rule.as_str(), "all_done");
    assert_eq!(fine.task("a").unwrap().params["command"], "echo {{ ds }}");
}
