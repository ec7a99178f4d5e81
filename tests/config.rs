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
            ("SETLIST_CONN_SNOWFLAKE", "snowflake://me:pw@acct/DB"),
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

#[test]
fn connections_come_from_the_file_and_setlist_conn_variables_with_secrets_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("sf-password");
    std::fs::write(&secret, "s3cr3t\n").unwrap();
    let (_d, path) = file(&format!(
        r#"
        [connections.snowflake]
        url = "snowflake://LOADER@myorg-acct/SETLIST?warehouse=LOAD_WH&role=LOADER"
        password_file = "{}"
        [connections.airflow]
        url = "http://admin@file-host:8080"
        password_env = "AIRFLOW_PW"
        "#,
        secret.display()
    ));
    let loaded = load(
        Some(&path),
        &vars(&[
            ("AIRFLOW_PW", "hunter2"),
            // A variable wins over the file, as for any key.
            ("SETLIST_CONN_AIRFLOW", "http://ops@env-host:8080"),
            (
                "SETLIST_CONN_WAREHOUSE",
                "postgres://me:pw@db:5432/analytics",
            ),
        ]),
        Flags::new(),
    )
    .unwrap();
    let c = &loaded.config.resolved;
    let sf = c
        .get("snowflake", tasks::connection::ConnectionKind::Snowflake)
        .unwrap();
    assert_eq!(sf.password().unwrap().expose(), "s3cr3t");
    assert_eq!(sf.param("warehouse").as_deref(), Some("LOAD_WH"));
    let airflow = c
        .get("airflow", tasks::connection::ConnectionKind::Http)
        .unwrap();
    assert_eq!(airflow.http_url(), "http://env-host:8080/");
    assert_eq!(airflow.login().as_deref(), Some("ops"));
    assert_eq!(airflow.password().unwrap().expose(), "hunter2");
    let wh = c
        .get("warehouse", tasks::connection::ConnectionKind::Postgres)
        .unwrap();
    assert_eq!(
        wh.postgres_url().expose(),
        "postgres://me:pw@db:5432/analytics"
    );

    let shown = loaded.show();
    for secret in ["s3cr3t", "hunter2", ":pw@"] {
        assert!(!shown.contains(secret), "{secret} shows in:\n{shown}");
    }
    assert!(
        shown.contains("connections.warehouse = \"postgres://me:***@db:5432/analytics\"    # postgres connection; environment variable SETLIST_CONN_WAREHOUSE; variable SETLIST_CONN_WAREHOUSE"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "connections.snowflake = \"snowflake://LOADER:***@myorg-acct/SETLIST?warehouse=LOAD_WH&role=LOADER\"    # snowflake connection; file {}",
            path.display()
        )),
        "{shown}"
    );
}

#[test]
fn the_older_variables_of_snowflake_airflow_and_aws_become_connections() {
    let loaded = load(
        None,
        &vars(&[
            ("SNOWFLAKE_ACCOUNT", "acct"),
            ("SNOWFLAKE_USER", "loader"),
            ("SNOWFLAKE_PASSWORD", "pw1"),
            ("SNOWFLAKE_DATABASE", "DB1"),
            ("SETLIST_SNOWFLAKE_URL", "http://127.0.0.1:18444"),
            ("SETLIST_AIRFLOW_URL", "http://127.0.0.1:8080"),
            ("SETLIST_AIRFLOW_USERNAME", "admin"),
            ("SETLIST_AIRFLOW_PASSWORD", "pw2"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:18333"),
            ("AWS_ACCESS_KEY_ID", "key"),
            ("AWS_SECRET_ACCESS_KEY", "pw3"),
            ("AWS_SESSION_TOKEN", "tok"),
            ("AWS_PROFILE", "not-an-object-store-option"),
        ]),
        Flags::new(),
    )
    .unwrap();
    use tasks::connection::ConnectionKind::*;
    let c = &loaded.config.resolved;
    let sf = c.get("snowflake", Snowflake).unwrap();
    assert_eq!(
        sf.shown(),
        "snowflake://loader:***@acct/DB1?endpoint=http%3A%2F%2F127.0.0.1%3A18444"
    );
    assert_eq!(
        sf.param("endpoint").as_deref(),
        Some("http://127.0.0.1:18444")
    );
    assert_eq!(sf.password().unwrap().expose(), "pw1");
    let airflow = c.get("airflow", Http).unwrap();
    assert_eq!(airflow.login().as_deref(), Some("admin"));
    assert_eq!(airflow.password().unwrap().expose(), "pw2");
    let s3: std::collections::BTreeMap<String, String> =
        c.get("s3", S3).unwrap().s3_options().into_iter().collect();
    assert_eq!(s3["endpoint"], "http://127.0.0.1:18333");
    assert_eq!(s3["allow_http"], "true");
    assert_eq!(s3["access_key_id"], "key");
    assert_eq!(s3["secret_access_key"], "pw3");
    assert_eq!(s3["aws_session_token"], "tok");
    assert!(!s3.contains_key("aws_profile"));
    assert!(
        loaded.show().contains("connections.s3 = \"s3://key:***@127.0.0.1:18333?secure=false\"    # s3 connection; environment variables AWS_*"),
        "{}",
        loaded.show()
    );

    // A connection defined by name wins over the older variables whole.
    let loaded = load(
        None,
        &vars(&[
            ("SNOWFLAKE_ACCOUNT", "acct"),
            ("SNOWFLAKE_USER", "loader"),
            ("SETLIST_CONN_SNOWFLAKE", "snowflake://other:pw@acct2/DB2"),
        ]),
        Flags::new(),
    )
    .unwrap();
    let sf = loaded.config.resolved.get("snowflake", Snowflake).unwrap();
    assert_eq!(sf.login().as_deref(), Some("other"));
}

#[test]
fn a_bad_connection_names_its_field_and_where_it_came_from() {
    let (_d, path) = file(
        r#"
        [connections.lake]
        url = "s3://key@127.0.0.1:18333"
        password_env = "NOT_SET_ANYWHERE"
        "#,
    );
    let e = error(Some(&path), &[], Flags::new());
    assert_eq!(
        e,
        format!(
            "invalid configuration:\n  connections.lake.password_env: names NOT_SET_ANYWHERE, which is not set (from file {})",
            path.display()
        )
    );
    let e = error(None, &[("SETLIST_CONN_ODD", "ftp://h")], Flags::new());
    assert!(
        e.starts_with(
            "invalid configuration:\n  connections.odd.url: its scheme ftp:// names no kind"
        ),
        "{e}"
    );
    assert!(
        e.ends_with("(from environment variable SETLIST_CONN_ODD)"),
        "{e}"
    );
    let e = error(
        None,
        &[("SETLIST_CONN_SF", "snowflake://u@acct/DB")],
        Flags::new(),
    );
    assert_eq!(
        e,
        "invalid configuration:\n  connections.sf.password: a Snowflake connection needs a password or a private key (private_key_file) (from environment variable SETLIST_CONN_SF)"
    );
    let (_d, path) = file("[connections.x]\nurl = \"http://h\"\npasword = \"typo\"\n");
    let e = error(Some(&path), &[], Flags::new());
    assert!(
        e.contains("connections.x.pasword: unknown field: found `pasword`"),
        "{e}"
    );
    // A setting that names a connection the configuration lacks, or one of another kind.
    let e = error(
        None,
        &[
            ("SETLIST_WAREHOUSE_KIND", "snowflake"),
            ("SETLIST_CONN_SNOWFLAKE", "http://h"),
        ],
        Flags::new(),
    );
    assert_eq!(
        e,
        "invalid configuration:\n  warehouse.kind: the Snowflake warehouse needs its connection: connection `snowflake` is a http connection, not the snowflake connection this needs (from environment variable SETLIST_WAREHOUSE_KIND)"
    );
    let e = error(None, &[("SETLIST_STORE_CONNECTION", "lake")], Flags::new());
    assert!(
        e.starts_with(
            "invalid configuration:\n  store.connection: no connection named `lake` (defined: none)"
        ),
        "{e}"
    );
}

#[test]
fn older_variables_meant_for_other_tools_never_stop_a_command() {
    use tasks::connection::ConnectionKind::*;
    // Keys for AWS itself (no endpoint), as the aws CLI's shell has them.
    let loaded = load(
        None,
        &vars(&[
            ("AWS_ACCESS_KEY_ID", "AKIA 1"),
            ("AWS_SECRET_ACCESS_KEY", "pw"),
            ("AWS_REGION", "eu-west-1"),
        ]),
        Flags::new(),
    )
    .unwrap();
    let s3 = loaded.config.resolved.get("s3", S3).unwrap();
    assert_eq!(
        s3.shown(),
        "s3://AKIA%201:***@aws?secure=true&region=eu-west-1"
    );
    let o: std::collections::BTreeMap<String, String> = s3.s3_options().into_iter().collect();
    assert!(!o.contains_key("endpoint"), "{o:?}");
    assert_eq!(o["access_key_id"], "AKIA 1");
    assert_eq!(o["region"], "eu-west-1");
    // Snowflake variables exported for dbt's browser login: no password, no key. The
    // connection is left out (with a warning); the command goes on.
    let loaded = load(
        None,
        &vars(&[("SNOWFLAKE_ACCOUNT", "acct"), ("SNOWFLAKE_USER", "me")]),
        Flags::new(),
    )
    .unwrap();
    assert!(!loaded.config.resolved.contains("snowflake"));
    // The same problem in a connection defined by name stops the command.
    let e = error(
        None,
        &[("SETLIST_CONN_SNOWFLAKE", "snowflake://me@acct/DB")],
        Flags::new(),
    );
    assert!(
        e.contains("connections.snowflake.password: a Snowflake connection needs"),
        "{e}"
    );
}
