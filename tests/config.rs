//! The one configuration: its layers (defaults, file, variables, flags), every
//! rejection it makes with the key and the place it names, and `config show`.

use std::path::PathBuf;

use setlist::config::{Flags, load};

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A config file with `text` in a folder of its own.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("setlist.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn error(file: Option<&std::path::Path>, env: &[(&str, &str)], flags: Flags) -> String {
    match load(file, &vars(env), flags) {
        Ok(_) => panic!("the configuration was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn each_layer_wins_over_the_one_before_and_show_says_which() {
    let (_dir, path) = file(
        r#"
        dags_dir = "from-file"
        [kafka]
        brokers = "file:9092"
        topic = "file-topic"
        [worker]
        concurrency = 3
        "#,
    );
    let loaded = load(
        Some(&path),
        &vars(&[
            ("SETLIST_KAFKA_TOPIC", "env-topic"),
            ("SETLIST_WORKER_CONCURRENCY", "5"),
        ]),
        Flags::new().set("worker.concurrency", Some(7)),
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.dags_dir, PathBuf::from("from-file"));
    assert_eq!(c.kafka.brokers, "file:9092");
    assert_eq!(c.kafka.topic, "env-topic");
    assert_eq!(c.worker.concurrency, 7);
    assert_eq!(
        c.store.url, ".setlist/lake",
        "untouched keys keep their default"
    );
    let shown = loaded.show();
    let line = |key: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no line for {key} in:\n{shown}"))
            .to_string()
    };
    assert!(line("kafka.brokers").contains(&format!("# file {}", path.display())));
    assert!(line("kafka.topic").contains("# environment variable SETLIST_KAFKA_TOPIC"));
    assert!(line("worker.concurrency").contains("# flag --concurrency"));
    assert!(line("store.url").contains("# default; variable SETLIST_STORE_URL"));
}

#[test]
fn the_older_variable_names_still_work_and_the_key_s_own_wins() {
    let c = load(None, &vars(&[("SETLIST_TOPIC", "old")]), Flags::new())
        .unwrap()
        .config;
    assert_eq!(c.kafka.topic, "old", "SETLIST_TOPIC sets kafka.topic");
    let c = load(
        None,
        &vars(&[
            ("SETLIST_TOPIC", "old"),
            ("SETLIST_KAFKA_TOPIC", "new"),
            ("DATABASE_URL", "postgres://a@h/one"),
            ("SETLIST_DBT", "/opt/dbt"),
            ("SETLIST_WAREHOUSE", "snowflake"),
        ]),
        Flags::new(),
    )
    .unwrap()
    .config;
    assert_eq!(c.kafka.topic, "new");
    assert_eq!(c.database_url.expose(), "postgres://a@h/one");
    assert_eq!(c.dbt.binary, PathBuf::from("/opt/dbt"));
    assert_eq!(c.warehouse.kind, tasks::settings::WarehouseKind::Snowflake);
}

#[test]
fn a_topic_that_looks_like_a_number_stays_text() {
    let c = load(None, &vars(&[("SETLIST_KAFKA_TOPIC", "123")]), Flags::new())
        .unwrap()
        .config;
    assert_eq!(c.kafka.topic, "123");
}

#[test]
fn secrets_never_show() {
    let loaded = load(
        None,
        &vars(&[
            ("DATABASE_URL", "postgres://me:hunter2@db/setlist"),
            ("SETLIST_API_TOKEN", "t0ps3cret"),
            ("SETLIST_WAREHOUSE_URL", "postgres://wh:sw0rdfish@wh/gold"),
        ]),
        Flags::new(),
    )
    .unwrap();
    let shown = loaded.show();
    for secret in ["hunter2", "t0ps3cret", "sw0rdfish"] {
        assert!(!shown.contains(secret), "{secret} in:\n{shown}");
    }
    assert!(shown.contains("database_url = \"postgres://me:***@db/setlist\""));
    assert!(shown.contains("web.api_token = \"[redacted]\""));
    let debug = format!("{:?}", loaded.config);
    for secret in ["hunter2", "t0ps3cret", "sw0rdfish"] {
        assert!(!debug.contains(secret), "{secret} in Debug");
    }
}

#[test]
fn an_unknown_key_in_the_file_names_the_key_and_the_file() {
    let (_dir, path) = file("[kafka]\ntopik = \"plays\"\n");
    let e = error(Some(&path), &[], Flags::new());
    assert!(
        e.contains("kafka.topik: unknown field: found `topik`"),
        "{e}"
    );
    assert!(
        e.contains(&format!("(from file {})", path.display())),
        "{e}"
    );
}

#[test]
fn an_unknown_section_names_itself() {
    let (_dir, path) = file("[kafak]\nbrokers = \"b:1\"\n");
    let e = error(Some(&path), &[], Flags::new());
    assert!(e.contains("kafak: unknown field: found `kafak`"), "{e}");
}

#[test]
fn a_syntax_error_in_the_file_says_line_and_column() {
    let (_dir, path) = file("dags_dir = \"dags\"\n[kafka\n");
    let e = error(Some(&path), &[], Flags::new());
    assert!(
        e.starts_with(&format!(
            "{}: TOML parse error at line 2, column 7",
            path.display()
        )),
        "{e}"
    );
}

#[test]
fn a_missing_file_that_was_asked_for_is_an_error() {
    let e = error(
        Some(std::path::Path::new("/nonexistent/setlist.toml")),
        &[],
        Flags::new(),
    );
    assert!(
        e.starts_with("cannot read the config file /nonexistent/setlist.toml"),
        "{e}"
    );
}

#[test]
fn a_value_of_the_wrong_type_names_the_key_and_the_variable() {
    let e = error(
        None,
        &[("SETLIST_WORKER_CONCURRENCY", "lots")],
        Flags::new(),
    );
    assert_eq!(
        e,
        "invalid configuration:\n  worker.concurrency: invalid type: found string \"lots\", expected usize (from environment variable SETLIST_WORKER_CONCURRENCY)"
    );
    let (_dir, path) = file("[scheduler]\nworker_timeout = \"soon\"\n");
    let e = error(Some(&path), &[], Flags::new());
    assert!(e.contains("scheduler.worker_timeout: "), "{e}");
    assert!(
        e.contains(&format!("(from file {})", path.display())),
        "{e}"
    );
}

#[test]
fn a_misspelt_variable_is_an_error_not_ignored() {
    let e = error(None, &[("SETLIST_KAFKA_BROKER", "b:1")], Flags::new());
    assert_eq!(
        e,
        "unknown setting SETLIST_KAFKA_BROKER: no key is named so (`setlist config show` lists every variable)"
    );
    // Variables of the scripts and tools outside the settings' sections are no settings.
    load(
        None,
        &vars(&[
            ("SETLIST_FAKESNOW_URL", "http://127.0.0.1:18444"),
            ("SETLIST_HOME", "/root/.cache/setlist"),
            ("SETLIST_KAFKA_PORT", "19092"),
            ("SETLIST_WAREHOUSE_DB", "setlist"),
            ("SETLIST_AIRFLOW_URL", "http://127.0.0.1:8081"),
        ]),
        Flags::new(),
    )
    .unwrap();
}

#[test]
fn values_serde_cannot_judge_are_checked_too() {
    let e = error(
        None,
        &[
            ("SETLIST_WORKER_CONCURRENCY", "0"),
            ("SETLIST_WORKER_COUNT", "0"),
            ("SETLIST_SIMULATE_RATE", "-5"),
            ("DATABASE_URL", "mysql://me@db/setlist"),
            ("SETLIST_WAREHOUSE_URL", "http://wh"),
            ("SETLIST_KAFKA_BROKERS", " "),
        ],
        Flags::new(),
    );
    assert_eq!(
        e,
        "invalid configuration:
  worker.concurrency: must be at least 1 (from environment variable SETLIST_WORKER_CONCURRENCY)
  worker.count: must be at least 1 (from environment variable SETLIST_WORKER_COUNT)
  simulate.rate: must be 0 (off) or more, not -5 (from environment variable SETLIST_SIMULATE_RATE)
  database_url: must be a postgres:// URL, not mysql://me@db/setlist (from environment variable DATABASE_URL)
  warehouse.url: must be a postgres:// URL, not http://wh (from environment variable SETLIST_WAREHOUSE_URL)
  kafka.brokers: must name at least one host:port (from environment variable SETLIST_KAFKA_BROKERS)"
    );
    let (_dir, path) = file("[kafka]\ntopic = \"\"\n");
    let e = error(Some(&path), &[], Flags::new());
    assert_eq!(
        e,
        format!(
            "invalid configuration:\n  kafka.topic: must not be empty (from file {})",
            path.display()
        )
    );
}

#[test]
fn the_dbt_profile_s_older_variables_become_the_one_warehouse_url() {
    let c = load(
        None,
        &vars(&[
            ("SETLIST_WAREHOUSE_HOST", "wh.internal"),
            ("SETLIST_WAREHOUSE_PASSWORD", "p&s+w rd"),
            ("SETLIST_WAREHOUSE_DB", "gold"),
        ]),
        Flags::new(),
    )
    .unwrap();
    assert_eq!(
        c.config.warehouse.url.as_ref().unwrap().expose(),
        "postgres://postgres:p&s+w%20rd@wh.internal:5432/gold"
    );
    assert!(c.show().contains(
        "warehouse.url = \"postgres://postgres:***@wh.internal:5432/gold\"    # environment variables SETLIST_WAREHOUSE_HOST/_PORT/_USER/_PASSWORD/_DB"
    ));
    // SETLIST_WAREHOUSE_URL, when given, is the warehouse.
    let c = load(
        None,
        &vars(&[
            ("SETLIST_WAREHOUSE_HOST", "wh.internal"),
            ("SETLIST_WAREHOUSE_URL", "postgres://me@elsewhere/gold"),
        ]),
        Flags::new(),
    )
    .unwrap();
    assert_eq!(
        c.config.warehouse.url.unwrap().expose(),
        "postgres://me@elsewhere/gold"
    );
}

#[test]
fn secret_kafka_properties_never_show() {
    let (_dir, path) =
        file("[kafka.properties]\n\"sasl.password\" = \"hunter3\"\n\"linger.ms\" = \"5\"\n");
    let loaded = load(Some(&path), &[], Flags::new()).unwrap();
    assert_eq!(loaded.config.kafka.properties["sasl.password"], "hunter3");
    let shown = loaded.show();
    assert!(!shown.contains("hunter3"), "{shown}");
    assert!(shown.contains("\"linger.ms\":\"5\""), "{shown}");
    assert!(!format!("{:?}", loaded.config).contains("hunter3"));
}
