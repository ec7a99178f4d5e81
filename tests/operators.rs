//! The operator kinds against the real things they talk to: `http` and `wait_http`
//! against an HTTP server in the test (a real socket), `notify` against a webhook
//! receiver and the SMTP sink that scripts/smtp.sh starts, `python` with the machine's
//! python3, `trigger_dag`, `wait_run`, `wait_sql` and `wait_object` against the state
//! store, PostgreSQL and a folder.

mod common;

use std::time::Duration;

use common::http::{Seen, serve};
use common::{TestDb, dag, error, output, run_to_end, states, worker_with};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

/// Triggers `toml`'s DAG at a fixed logical date and runs it to its end.
async fn run(
    db: &TestDb,
    w: &orchestrator::worker::Worker,
    toml: &str,
) -> (i64, std::collections::BTreeMap<String, String>) {
    let d = dag(toml);
    orchestrator::store::dags::upsert(&db.pool, &d)
        .await
        .unwrap();
    let at: chrono::DateTime<chrono::Utc> = "2026-03-01T06:00:00Z".parse().unwrap();
    let run = orchestrator::store::runs::trigger(&db.pool, &d, json!({}), Some(at))
        .await
        .unwrap();
    run_to_end(db, w, run, LIMIT).await;
    (run, states(&db.pool, run).await)
}

async fn tries(db: &TestDb, run: i64, task: &str) -> (i32, Option<String>) {
    sqlx::query_as(
        "SELECT try_number, failure_reason::text FROM setlist.task_instances WHERE run_id = $1 AND task_id = $2",
    )
    .bind(run)
    .bind(task)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn http_sends_through_a_connection_and_keeps_the_answer_bounded() {
    let db = TestDb::new().await;
    let base = serve(Seen::default()).await;
    let api = base.replace("http://", "http://ana:s3cret@");
    let w = worker_with(&db, &[("api", api)]).await;
    let (run, states) = run(
        &db,
        &w,
        &format!(
            r#"
        [dag]
        id = "calls"
        [[task]]
        id = "post"
        kind = "http"
        params = {{ connection = "api", endpoint = "/echo", method = "POST", json = {{ day = "{{{{ ds }}}}" }}, headers = {{ X-Run = "{{{{ run_id }}}}" }} }}
        [[task]]
        id = "big"
        kind = "http"
        params = {{ url = "{base}/big", max_output_bytes = 1000 }}
        [[task]]
        id = "checked"
        kind = "http"
        params = {{ url = "{base}/status/202", expect_status = [202], response_check = "response.json.code == 202" }}
    "#
        ),
    )
    .await;
    assert_eq!(states.values().collect::<Vec<_>>(), ["success"; 3]);
    let post = output(&db, run, "post").await;
    assert_eq!(post["status"], 200);
    let sent = &post["json"];
    assert_eq!(sent["body"], r#"{"day":"2026-03-01"}"#);
    assert_eq!(sent["headers"]["x-run"], run.to_string());
    assert_eq!(sent["headers"]["content-type"], "application/json");
    // Basic auth from the connection's user and password.
    assert_eq!(sent["headers"]["authorization"], "Basic YW5hOnMzY3JldA==");
    let big = output(&db, run, "big").await;
    assert_eq!(
        (big["text"].as_str().unwrap().len(), &big["truncated"]),
        (1000, &json!(true))
    );
    assert_eq!(
        output(&db, run, "checked").await["json"],
        json!({ "code": 202 })
    );
    // The password never reaches the log.
    let log = orchestrator::store::logs::attempt(&db.pool, run, "post", None)
        .await
        .unwrap();
    assert!(log.iter().all(|l| !l.line.contains("s3cret")), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.line.starts_with("POST http://ana:***@127.0.0.1:")),
        "{log:?}"
    );
}

#[tokio::test]
async fn http_retries_a_5xx_and_fails_a_4xx_or_a_false_check_at_once() {
    let db = TestDb::new().await;
    let base = serve(Seen::default()).await;
    let w = worker_with(&db, &[]).await;
    let (run, states) = run(
        &db,
        &w,
        &format!(
            r#"
        [dag]
        id = "flaky_calls"
        [defaults]
        retries = 3
        retry_delay = "50ms"
        [[task]]
        id = "flaky"
        kind = "http"
        params = {{ url = "{base}/flaky" }}
        [[task]]
        id = "missing"
        kind = "http"
        params = {{ url = "{base}/status/404" }}
        [[task]]
        id = "unchecked"
        kind = "http"
        params = {{ url = "{base}/status/200", response_check = "response.json.code == 201" }}
    "#
        ),
    )
    .await;
    assert_eq!(states["flaky"], "success");
    assert_eq!(tries(&db, run, "flaky").await, (3, None));
    assert_eq!(output(&db, run, "flaky").await["text"], "fine");
    assert_eq!(states["missing"], "failed");
    assert_eq!(
        tries(&db, run, "missing").await,
        (1, Some("invalid".into()))
    );
    let e = error(&db, run, "missing").await;
    assert!(e.contains("/status/404 answered 404, expected 2xx"), "{e}");
    assert_eq!(
        tries(&db, run, "unchecked").await,
        (1, Some("invalid".into()))
    );
    assert!(
        error(&db, run, "unchecked")
            .await
            .contains("response_check \"response.json.code == 201\" is false")
    );
}

#[tokio::test]
async fn wait_http_pokes_until_the_answer_passes_its_check() {
    let db = TestDb::new().await;
    let seen = Seen::default();
    let base = serve(seen.clone()).await;
    let w = worker_with(&db, &[]).await;
    let (run, states) = run(
        &db,
        &w,
        &format!(
            r#"
        [dag]
        id = "job_done"
        [[task]]
        id = "done"
        kind = "wait_http"
        params = {{ url = "{base}/job", response_check = "response.json.state == 'done'", poke_interval = "200ms" }}
    "#
        ),
    )
    .await;
    assert_eq!(states["done"], "success");
    assert_eq!(
        output(&db, run, "done").await["json"],
        json!({ "state": "done", "polls": 3 })
    );
    let pokes: i32 = sqlx::query_scalar(
        "SELECT a.pokes FROM setlist.attempts a JOIN setlist.task_instances t ON t.id = a.ti_id WHERE t.run_id = $1",
    )
    .bind(run)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(pokes, 3);
}

#[tokio::test]
async fn notify_posts_to_a_webhook_and_a_refusal_is_not_retried() {
    let db = TestDb::new().await;
    let seen = Seen::default();
    let base = serve(seen.clone()).await;
    let hook = format!("webhook+{base}/hook");
    let refusing = format!("webhook+{base}/status/400");
    let w = worker_with(&db, &[("slack", hook), ("refusing", refusing)]).await;
    let (run, states) = run(
        &db,
        &w,
        r#"
        [dag]
        id = "tell"
        [[task]]
        id = "say"
        kind = "notify"
        params = { connection = "slack", message = "{{ dag_id }} for {{ ds }} is done" }
        [[task]]
        id = "blocks"
        kind = "notify"
        params = { connection = "slack", message = "", payload = { blocks = [{ type = "section" }] } }
        [[task]]
        id = "refused"
        kind = "notify"
        retries = 2
        params = { connection = "refusing", message = "hello" }
    "#,
    )
    .await;
    assert_eq!(
        (states["say"].as_str(), states["blocks"].as_str()),
        ("success", "success")
    );
    let posted = seen.posted.lock().unwrap().clone();
    assert!(
        posted.contains(&json!({ "text": "tell for 2026-03-01 is done" })),
        "{posted:?}"
    );
    assert!(
        posted.contains(&json!({ "blocks": [{ "type": "section" }] })),
        "{posted:?}"
    );
    assert_eq!(
        tries(&db, run, "refused").await,
        (1, Some("invalid".into()))
    );
    // The webhook's path is its secret: the error shows it masked.
    let e = error(&db, run, "refused").await;
    assert!(e.contains("/*** answered 400"), "{e}");
    assert!(!e.contains("/status/400"), "{e}");
}

#[tokio::test]
async fn notify_mails_through_smtp() {
    let db = TestDb::new().await;
    let smtp = common::tool_port(
        &std::env::var("SETLIST_SMTP").unwrap_or_else(|_| "127.0.0.1:18025".into()),
        "scripts/smtp.sh",
    );
    let maildir = std::env::var("SETLIST_SMTP_MAILDIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/setlist/smtp/maildir",
            std::env::var("HOME").unwrap()
        )
    });
    let subject = format!("load done {}", uuid::Uuid::new_v4());
    let w = worker_with(
        &db,
        &[("mail", format!("smtp://{smtp}?from=setlist@example.com"))],
    )
    .await;
    let (run, states) = run(
        &db,
        &w,
        &format!(
            r#"
        [dag]
        id = "mail"
        [[task]]
        id = "mail"
        kind = "notify"
        params = {{ connection = "mail", to = ["data-team@example.com"], subject = "{subject}", message = "Run {{{{ run_id }}}} of {{{{ dag_id }}}} loaded." }}
    "#
        ),
    )
    .await;
    assert_eq!(
        states["mail"],
        "success",
        "{}",
        error(&db, run, "mail").await
    );
    let mail = std::fs::read_dir(format!("{maildir}/new"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .find(|m| m.contains(&subject))
        .expect("the sink kept the mail");
    assert!(mail.contains("To: data-team@example.com"), "{mail}");
    assert!(mail.contains("From: setlist@example.com"), "{mail}");
    assert!(
        mail.contains(&format!("Run {run} of mail loaded.")),
        "{mail}"
    );
}

#[tokio::test]
async fn python_gets_the_context_and_its_last_json_line_is_the_output() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("count.py"),
        "import json, os, sys\nctx = json.load(open(os.environ['SETLIST_CONTEXT_FILE']))\nprint('counting', file=sys.stderr)\nprint(f'{{braces}} stay {len(sys.argv)}')\nprint(json.dumps({'ds': ctx['ds'], 'rows': ctx['upstream']['make']['rows'] + 1, 'args': sys.argv[1:], 'conf': ctx['conf']}))\nprint('done')\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("dag.toml"),
        r#"
        [dag]
        id = "py"
        [[task]]
        id = "make"
        kind = "python"
        params = { code = "print('{\"rows\": 41}')" }
        [[task]]
        id = "count"
        kind = "python"
        depends_on = ["make"]
        params = { script = "count.py", args = ["{{ ds_nodash }}"] }
        [[task]]
        id = "broken"
        kind = "python"
        params = { code = "raise SystemExit(3)" }
    "#,
    )
    .unwrap();
    let d =
        orchestrator::dag::load_file(&dir.path().join("dag.toml"), &common::registry()).unwrap();
    // The script is read at load time and stored with the DAG, its braces kept from
    // the templates.
    let code = d.task("count").unwrap().params["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(code.starts_with("{% raw %}import json"), "{code}");
    let w = worker_with(&db, &[]).await;
    let at: chrono::DateTime<chrono::Utc> = "2026-03-01T06:00:00Z".parse().unwrap();
    let run = orchestrator::store::runs::trigger(&db.pool, &d, json!({ "region": "eu" }), Some(at))
        .await
        .unwrap();
    run_to_end(&db, &w, run, LIMIT).await;
    assert_eq!(
        output(&db, run, "count").await,
        json!({ "ds": "2026-03-01", "rows": 42, "args": ["20260301"], "conf": { "region": "eu" } })
    );
    assert_eq!(states(&db.pool, run).await["broken"], "failed");
    assert!(
        error(&db, run, "broken")
            .await
            .ends_with("(inline code) exited with code 3")
    );
}

#[tokio::test]
async fn a_missing_script_or_sql_file_is_a_load_error_at_its_param() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("files.toml");
    std::fs::write(
        &path,
        "[dag]\nid = \"files\"\n[[task]]\nid = \"q\"\nkind = \"sql\"\nparams = { file = \"nope.sql\" }\n",
    )
    .unwrap();
    let errors = orchestrator::dag::load_file(&path, &common::registry()).unwrap_err();
    let first = errors[0].to_string();
    assert!(
        first.starts_with(&format!(
            "{}:6:19: task `q`: cannot read params.file {}/nope.sql:",
            path.display(),
            dir.path().display()
        )),
        "{first}"
    );
}

#[tokio::test]
async fn trigger_dag_starts_another_dag_waits_for_it_and_fails_with_it() {
    let db = TestDb::new().await;
    for child in [
        "[dag]\nid = \"child\"\n[[task]]\nid = \"work\"\nkind = \"shell\"\nparams = { command = \"test \\\"$SETLIST_CONF\\\" = '{\\\"region\\\":\\\"eu\\\"}'\" }\n",
        "[dag]\nid = \"failing_child\"\n[[task]]\nid = \"work\"\nkind = \"shell\"\nparams = { command = \"exit 1\" }\n",
    ] {
        orchestrator::store::dags::upsert(&db.pool, &dag(child))
            .await
            .unwrap();
    }
    let w = worker_with(&db, &[]).await;
    let (run, states) = run(
        &db,
        &w,
        r#"
        [dag]
        id = "parent"
        [[task]]
        id = "start"
        kind = "trigger_dag"
        params = { dag_id = "child", conf = { region = "eu" }, wait = true, poke_interval = "100ms" }
        [[task]]
        id = "start_failing"
        kind = "trigger_dag"
        params = { dag_id = "failing_child", wait = true, poke_interval = "100ms" }
        [[task]]
        id = "fire_and_forget"
        kind = "trigger_dag"
        params = { dag_id = "failing_child", logical_date = "2026-03-02T00:00:00Z" }
    "#,
    )
    .await;
    assert_eq!(states["start"], "success");
    let out = output(&db, run, "start").await;
    assert_eq!(
        (out["dag_id"].as_str(), out["state"].as_str()),
        (Some("child"), Some("success"))
    );
    let child_run: (String, String) = sqlx::query_as(
        "SELECT run_type::text, logical_date::text FROM setlist.dag_runs WHERE id = $1",
    )
    .bind(out["run_id"].as_i64().unwrap())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        child_run,
        ("triggered".into(), "2026-03-01 06:00:00+00".into())
    );
    assert_eq!(states["start_failing"], "failed");
    assert!(
        error(&db, run, "start_failing")
            .await
            .ends_with("of DAG `failing_child` failed")
    );
    assert_eq!(states["fire_and_forget"], "success");
    assert_eq!(output(&db, run, "fire_and_forget").await["state"], "queued");
}

#[tokio::test]
async fn wait_run_wait_sql_and_wait_object_poke_until_their_condition_holds() {
    let db = TestDb::new().await;
    let lake = tempfile::tempdir().unwrap();
    sqlx::query("CREATE TABLE ready (day date)")
        .execute(&db.pool)
        .await
        .unwrap();
    let w = worker_with(&db, &[]).await;
    let upstream = dag("[dag]\nid = \"upstream\"\n[[task]]\nid = \"make\"\nkind = \"noop\"\n");
    orchestrator::store::dags::upsert(&db.pool, &upstream)
        .await
        .unwrap();
    let d = dag(&format!(
        r#"
        [dag]
        id = "waiter"
        [[task]]
        id = "upstream_done"
        kind = "wait_run"
        params = {{ dag_id = "upstream", task_id = "make", poke_interval = "100ms" }}
        [[task]]
        id = "row"
        kind = "wait_sql"
        params = {{ sql = "SELECT count(*) FROM ready WHERE day = '{{{{ ds }}}}'", poke_interval = "100ms" }}
        [[task]]
        id = "file"
        kind = "wait_object"
        params = {{ store = "{}", prefix = "raw/dt={{{{ ds }}}}/", min_objects = 2, poke_interval = "100ms" }}
    "#,
        lake.path().display()
    ));
    orchestrator::store::dags::upsert(&db.pool, &d)
        .await
        .unwrap();
    let at: chrono::DateTime<chrono::Utc> = "2026-03-01T06:00:00Z".parse().unwrap();
    let run = orchestrator::store::runs::trigger(&db.pool, &d, json!({}), Some(at))
        .await
        .unwrap();
    common::start_runs(&db.pool).await;
    common::drain(&w).await;
    let waiting = states(&db.pool, run).await;
    assert!(waiting.values().all(|s| s == "waiting"), "{waiting:?}");
    // Meet each condition; the next pokes find them.
    let other = orchestrator::store::runs::trigger(&db.pool, &upstream, json!({}), Some(at))
        .await
        .unwrap();
    sqlx::query("INSERT INTO ready VALUES ('2026-03-01')")
        .execute(&db.pool)
        .await
        .unwrap();
    let folder = lake.path().join("raw/dt=2026-03-01");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.parquet"), b"12345").unwrap();
    std::fs::write(folder.join("b.parquet"), b"123").unwrap();
    assert_eq!(run_to_end(&db, &w, run, LIMIT).await, "success");
    assert_eq!(
        output(&db, run, "upstream_done").await,
        json!({ "dag_id": "upstream", "run_id": other, "state": "success" })
    );
    assert_eq!(output(&db, run, "row").await["first_cell"], 1);
    assert_eq!(
        output(&db, run, "file").await,
        json!({ "prefix": "raw/dt=2026-03-01/", "objects": 2, "bytes": 8 })
    );
}

#[tokio::test]
async fn wait_run_fails_at_once_when_the_run_it_waits_for_failed() {
    let db = TestDb::new().await;
    let w = worker_with(&db, &[]).await;
    let upstream = dag(
        "[dag]\nid = \"breaks\"\n[[task]]\nid = \"make\"\nkind = \"shell\"\nparams = { command = \"exit 2\" }\n",
    );
    orchestrator::store::dags::upsert(&db.pool, &upstream)
        .await
        .unwrap();
    let at: chrono::DateTime<chrono::Utc> = "2026-03-01T06:00:00Z".parse().unwrap();
    orchestrator::store::runs::trigger(&db.pool, &upstream, json!({}), Some(at))
        .await
        .unwrap();
    let (run, states) = run(
        &db,
        &w,
        r#"
        [dag]
        id = "hopeful"
        [[task]]
        id = "wait"
        kind = "wait_run"
        params = { dag_id = "breaks", poke_interval = "100ms" }
    "#,
    )
    .await;
    assert_eq!(states["wait"], "failed");
    let e = error(&db, run, "wait").await;
    assert!(
        e.starts_with("the run of DAG `breaks` at 2026-03-01T06:00:00+00:00 is failed"),
        "{e}"
    );
}
