//! Named connections end to end: `setlist connections list` and `test` against the
//! real servers the scripts start (PostgreSQL, the Kafka-protocol broker, SeaweedFS's
//! S3, the Snowflake emulator, an HTTP server), and what a failing one says.

mod common;

use std::process::{Command, Output};

use common::TestDb;

fn setlist(env: &[(&str, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_setlist"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
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
async fn each_kind_of_connection_is_tested_against_the_real_server() {
    let db = TestDb::new().await;
    let brokers = common::streaming::kafka_brokers();
    common::streaming::s3_options(); // panics with the start command when S3 is down
    let fakesnow = common::tool_port("127.0.0.1:18444", "scripts/snowflake.sh");
    let web = common::web::serve(&[]).await;
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("SETLIST_CONN_STATE", db.url.clone()),
        ("SETLIST_CONN_BROKER", format!("kafka://{brokers}")),
        (
            "SETLIST_CONN_LAKE",
            "s3://setlist:setlist-secret@127.0.0.1:18333?secure=false&bucket=setlist".into(),
        ),
        (
            "SETLIST_CONN_SNOWFLAKE",
            format!("snowflake://setlist:unused@fakesnow/SETLIST?endpoint=http://{fakesnow}"),
        ),
        ("SETLIST_CONN_SITE", format!("{}/healthz", web.base)),
        (
            "SETLIST_CONN_NOWHERE",
            "postgres://postgres@127.0.0.1:1/none".into(),
        ),
        (
            "SETLIST_CONN_BADKEY",
            "s3://setlist:wrong-secret@127.0.0.1:18333?secure=false&bucket=setlist".into(),
        ),
    ];

    let (out, _) = text(&setlist(&env, &["connections", "list"]));
    assert!(out.starts_with("NAME"), "{out}");
    assert!(
        out.contains("lake                 s3         s3://setlist:***@127.0.0.1:18333?secure=false&bucket=setlist"),
        "{out}"
    );
    assert!(
        out.contains("environment variable SETLIST_CONN_LAKE"),
        "{out}"
    );
    assert!(!out.contains("setlist-secret"), "{out}");

    for (name, works) in [
        ("state", "state (postgres) works: connected: PostgreSQL"),
        ("broker", "broker (kafka) works: 1 broker(s)"),
        ("lake", "lake (s3) works: listed bucket setlist"),
        (
            "snowflake",
            "snowflake (snowflake) works: logged in to Snowflake account fakesnow",
        ),
        ("site", "site (http) works: "),
    ] {
        let o = setlist(&env, &["connections", "test", name]);
        assert!(o.status.success(), "{name}: {:?}", text(&o));
        assert!(text(&o).0.starts_with(works), "{name}: {:?}", text(&o));
    }
    let o = setlist(&env, &["connections", "test", "site"]);
    assert!(text(&o).0.contains("answered 200 OK"), "{:?}", text(&o));

    // What failed is said, and the exit code says it too.
    let o = setlist(&env, &["connections", "test", "nowhere"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.starts_with(
            "nowhere (postgres) failed: cannot connect to postgres://postgres@127.0.0.1:1/none"
        ),
        "{:?}",
        text(&o)
    );
    let o = setlist(&env, &["connections", "test", "badkey"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.starts_with(
            "badkey (s3) failed: cannot list bucket setlist at s3://setlist:***@127.0.0.1:18333"
        ),
        "{:?}",
        text(&o)
    );
    assert!(!text(&o).1.contains("wrong-secret"), "{:?}", text(&o));
    let o = setlist(&env, &["connections", "test", "nope"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("error: no connection named `nope` (defined: badkey, broker, lake, nowhere, site, snowflake, state)"),
        "{:?}",
        text(&o)
    );
}
