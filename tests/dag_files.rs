//! The broken-DAG corpus: every file in tests/dags/broken has its exact expected
//! messages beside it, and broken files never stop good ones from loading.

mod common;

use std::path::Path;
use std::process::Command;

use orchestrator::dag::load_dir;

const BROKEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dags/broken");

#[test]
fn every_broken_file_reports_exactly_its_expected_messages() {
    let registry = common::registry();
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(BROKEN)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
    {
        let dir = tempfile_dir();
        std::fs::copy(path, dir.join(path.file_name().unwrap())).unwrap();
        let bag = load_dir(&dir, &registry);
        assert!(bag.dags.is_empty(), "{} should not load", path.display());
        let got: Vec<String> = bag
            .errors
            .iter()
            .map(|e| e.to_string().replace(&format!("{}/", dir.display()), ""))
            .collect();
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let expected: Vec<&str> = expected.lines().collect();
        assert_eq!(got, expected, "messages for {}", path.display());
        checked += 1;
    }
    assert!(checked >= 14, "the corpus shrank to {checked} files");
}

#[test]
fn a_broken_file_does_not_stop_the_others_from_loading() {
    let registry = common::registry();
    let dir = tempfile_dir();
    std::fs::copy(
        Path::new(BROKEN).join("cycle.toml"),
        dir.join("a_cycle.toml"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(BROKEN).join("syntax.toml"),
        dir.join("b_syntax.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("c_good.toml"),
        "[dag]\nid = \"good\"\n[[task]]\nid = \"t\"\nkind = \"noop\"\n",
    )
    .unwrap();
    let bag = load_dir(&dir, &registry);
    assert_eq!(
        bag.dags.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["good"]
    );
    assert_eq!(bag.errors.len(), 2);
}

#[test]
fn the_same_dag_id_in_two_files_is_reported_on_the_second() {
    let dir = tempfile_dir();
    let good = "[dag]\nid = \"twice\"\n[[task]]\nid = \"t\"\nkind = \"noop\"\n";
    std::fs::write(dir.join("one.toml"), good).unwrap();
    std::fs::write(dir.join("two.toml"), good).unwrap();
    let bag = load_dir(&dir, &common::registry());
    assert_eq!(bag.dags.len(), 1);
    assert_eq!(
        bag.errors[0].to_string(),
        format!(
            "{}/two.toml:1:1: DAG id `twice` is already defined in {}/one.toml",
            dir.display(),
            dir.display()
        )
    );
}

#[test]
fn validate_prints_every_problem_and_exits_non_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_setlist"))
        .args(["dags", "validate", "--dags-dir", BROKEN])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cycle.toml:7:15: dependency cycle: a -> b -> c -> a"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad_timezone.toml:4:12: unknown timezone"),
        "{stderr}"
    );
    let total: usize = std::fs::read_dir(BROKEN)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "expected"))
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum();
    assert!(
        stderr.contains(&format!("{total} problem(s) found.")),
        "{stderr}"
    );
}

#[test]
fn the_shipped_example_dags_validate() {
    let out = Command::new(env!("CARGO_BIN_EXE_setlist"))
        .args([
            "dags",
            "validate",
            "--dags-dir",
            concat!(env!("CARGO_MANIFEST_DIR"), "/dags"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("setlist-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_task_naming_a_connection_the_configuration_lacks_is_named_at_its_place() {
    let registry = tasks::registry().with_connections(["snowflake".to_string()]);
    let dir = tempfile_dir();
    std::fs::write(
        dir.join("load.toml"),
        "[dag]\nid = \"load\"\n\n[[task]]\nid = \"load\"\nkind = \"load_bronze\"\nparams = { warehouse = \"snowflake\", connection = \"snowflak\" }\n\n[[task]]\nid = \"ok\"\nkind = \"load_bronze\"\nparams = { connection = \"snowflake\" }\n",
    )
    .unwrap();
    let bag = load_dir(&dir, &registry);
    let errors: Vec<String> = bag.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        [format!(
            "{}/load.toml:7:50: task `load`: params.connection: no connection named `snowflak` (defined: snowflake)",
            dir.display()
        )]
    );
}

#[test]
fn a_task_group_is_a_dependency_target_for_its_last_tasks() {
    let dag = common::dag(
        r#"
        [dag]
        id = "grouped"
        [[task]]
        id = "load"
        kind = "noop"
        depends_on = ["group:extract"]
        [[task]]
        id = "a"
        kind = "noop"
        group = "extract"
        [[task]]
        id = "b"
        kind = "noop"
        group = "extract"
        depends_on = ["a"]
        [[task]]
        id = "c"
        kind = "noop"
        group = "extract"
    "#,
    );
    assert_eq!(dag.task("load").unwrap().depends_on, ["b", "c"]);
    assert_eq!(dag.task("a").unwrap().group.as_deref(), Some("extract"));
    let errors = orchestrator::dag::parse_dag(
        Path::new("groups.toml"),
        "[dag]\nid = \"g\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\ngroup = \"x\"\ndepends_on = [\"group:x\"]\n[[task]]\nid = \"b\"\nkind = \"noop\"\ndepends_on = [\"group:y\"]\n",
        &common::registry(),
    )
    .unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "groups.toml:7:15: task `a` is in group `x` and cannot depend on it",
            "groups.toml:11:15: task `b` depends on unknown group `y` (groups: x)",
        ]
    );
}
