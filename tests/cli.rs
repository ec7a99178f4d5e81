//! The `setlist` command end to end: output, errors and exit codes.

mod common;

use std::process::{Command, Output};

use common::TestDb;

const DAGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dags");

fn setlist(db_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_setlist"))
        .args(args)
        .args(["--dags-dir", DAGS])
        .env("DATABASE_URL", db_url)
        .env("SETLIST_LOG", "warn")
        .output()
        .expect("run setlist")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[tokio::test]
async fn trigger_show_logs_pause_and_backfill() {
    let db = TestDb::new().await;
    // Before any scheduler has parsed the folder, the store has no DAG, and says how to
    // get one.
    let o = setlist(&db.url, &["dags", "trigger", "fan_out"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains(
            "error: no DAG `fan_out` in the state store (loaded: none); a scheduler, or `setlist dags sync`, records the DAG folder's"
        ),
        "{:?}",
        text(&o)
    );
    let o = setlist(&db.url, &["dags", "sync"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("ok  fan_out ("), "{:?}", text(&o));
    let o = setlist(
        &db.url,
        &["dags", "trigger", "fan_out", "--conf", r#"{"region":"EU"}"#],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(text(&o).0, "Triggered run 1 of fan_out.\n");

    // Run it with the library's worker, as a `setlist worker` would.
    common::start_runs(&db.pool).await;
    common::drain(&common::worker(&db).await).await;

    let (out, _) = text(&setlist(&db.url, &["runs", "show", "1"]));
    assert!(
        out.starts_with("run 1 of fan_out (manual, success)"),
        "{out}"
    );
    assert!(out.contains(r#"conf          {"region":"EU"}"#), "{out}");
    let (out, _) = text(&setlist(&db.url, &["tasks", "logs", "1", "d"]));
    assert!(
        out.trim_end()
            .ends_with(r#"stdout conf is {"region":"EU"}"#),
        "{out}"
    );

    let o = setlist(&db.url, &["dags", "pause", "hello"]);
    assert_eq!(text(&o).0, "hello is paused.\n");
    let (out, _) = text(&setlist(&db.url, &["dags", "list"]));
    let hello = out.lines().find(|l| l.starts_with("hello")).unwrap();
    assert!(hello.contains("true"), "{hello}");

    let o = setlist(
        &db.url,
        &[
            "dags",
            "backfill",
            "hello",
            "--from",
            "2026-01-01T00:00",
            "--to",
            "2026-01-01T00:30",
            "--no-wait",
        ],
    );
    assert_eq!(
        text(&o).0,
        "Created 6 backfill run(s) of hello; 0 interval(s) already had a run.\n"
    );
    let (out, _) = text(&setlist(&db.url, &["runs", "list", "--dag", "hello"]));
    assert_eq!(
        out.lines().filter(|l| l.contains("backfill")).count(),
        6,
        "{out}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_a_non_zero_exit() {
    let db = TestDb::new().await;
    assert!(setlist(&db.url, &["dags", "sync"]).status.success());
    let cases: [(&[&str], &str); 6] = [
        (
            &["dags", "trigger", "fan_out", "--conf", "{oops"],
            "error: --conf is not valid JSON: key must be a string at line 1 column 2",
        ),
        (&["dags", "trigger", "nope"], "error: no DAG `nope` in"),
        (
            &[
                "dags",
                "backfill",
                "fan_out",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-02",
            ],
            "error: DAG `fan_out` has no schedule",
        ),
        (
            &[
                "dags",
                "backfill",
                "hello",
                "--from",
                "yesterday",
                "--to",
                "2026-01-02",
            ],
            "\"yesterday\" is not a date or time",
        ),
        (&["runs", "show", "999"], "error: no run with id 999"),
        (&["tasks", "clear", "999", "a"], "error: no run with id 999"),
    ];
    for (args, expected) in cases {
        let o = setlist(&db.url, args);
        assert!(!o.status.success(), "{args:?} should fail");
        let (_, err) = text(&o);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn an_unreachable_state_store_names_the_script_that_starts_it() {
    let o = setlist("postgres://postgres@127.0.0.1:1/setlist", &["runs", "list"]);
    assert!(!o.status.success());
    let (_, err) = text(&o);
    assert!(
        err.contains("cannot reach the state store at postgres://postgres@127.0.0.1:1/setlist"),
        "{err}"
    );
    assert!(err.contains("scripts/postgres.sh"), "{err}");
}

/// `setlist config show` with a file, the older and the newer variable names and a
/// flag: each key says where its value came from, and a bad setting stops the command
/// with its key and its source.
#[test]
fn config_show_names_each_setting_s_source_and_a_bad_one_stops_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("setlist.toml");
    std::fs::write(&file, "[worker]\nconcurrency = 3\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_setlist"))
        .current_dir(dir.path())
        .args(["--dags-dir", "elsewhere", "config", "show"])
        .env("SETLIST_TOPIC", "from-the-old-name")
        .env("SETLIST_STORE_URL", "s3://lake/raw")
        .env("SETLIST_API_TOKEN", "not-to-be-seen")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
            .to_string()
    };
    assert!(line("kafka.topic").starts_with(
        "kafka.topic = \"from-the-old-name\"    # environment variable SETLIST_TOPIC"
    ));
    assert!(line("store.url").contains("# environment variable SETLIST_STORE_URL"));
    assert!(
        line("worker.concurrency").starts_with("worker.concurrency = 3    # file setlist.toml")
    );
    assert!(line("dags_dir").starts_with("dags_dir = \"elsewhere\"    # flag --dags-dir"));
    assert!(!out.contains("not-to-be-seen"), "{out}");

    let o = Command::new(env!("CARGO_BIN_EXE_setlist"))
        .current_dir(dir.path())
        .args(["runs", "list"])
        .env("SETLIST_WORKER_CONCURRENCY", "0")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert_eq!(
        err.trim_end(),
        "error: invalid configuration:\n  worker.concurrency: must be at least 1 (from environment variable SETLIST_WORKER_CONCURRENCY)"
    );
}

/// A web server whose port is taken stops with the reason instead of retrying forever.
#[tokio::test]
async fn a_taken_port_stops_setlist_web_with_the_reason() {
    let db = TestDb::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let o = setlist(&db.url, &["web", "--bind", &bind]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!("error: cannot listen on {bind}: ")),
        "{err}"
    );
}
