//! The REST API over real HTTP, served by a `setlist web` process against the test's
//! own database: every endpoint, auth failures and bad input included.

mod common;

use common::web::{TOKEN, serve};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn dags_are_listed_with_the_load_errors_of_broken_files_and_can_be_paused() {
    let api = serve(&[]).await;
    assert_eq!(
        api.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );

    let (status, body) = api.get("/api/v1/dags").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["dags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["hello"]);
    assert_eq!(body["dags"][0]["paused"], false);
    let errors = body["errors"].as_array().unwrap();
    let errors: Vec<&str> = errors.iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].ends_with("broken.toml:1:1: the DAG has no tasks: add at least one [[task]]"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("broken.toml:3:12: invalid schedule \"61 * * * *\""),
        "{errors:?}"
    );

    let (status, hello) = api.get("/api/v1/dags/hello").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hello["tasks"].as_array().unwrap().len(), 3);

    assert_eq!(
        api.post("/api/v1/dags/hello/pause", None).await.1,
        json!({"dag_id": "hello", "paused": true})
    );
    assert_eq!(api.get("/api/v1/dags/hello").await.1["paused"], true);
    assert_eq!(
        api.post("/api/v1/dags/hello/unpause", None).await.1["paused"],
        false
    );

    let (status, body) = api.get("/api/v1/dags/nope").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "dag_not_found")
    );
    let (status, body) = api.post("/api/v1/dags/nope/pause", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "dag_not_found")
    );
}

#[tokio::test]
async fn a_triggered_run_carries_its_conf_and_bad_input_gets_a_json_error() {
    let api = serve(&[]).await;
    let (status, body) = api
        .post(
            "/api/v1/dags/hello/runs",
            Some(r#"{"conf": {"region": "EU"}, "logical_date": "2026-05-01T17:00:00Z"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let run_id = body["run_id"].as_i64().unwrap();
    let (status, run) = api.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run["dag_id"], "hello");
    assert_eq!(run["run_type"], "manual");
    assert_eq!(run["conf"], json!({"region": "EU"}));
    let tasks: Vec<&str> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(tasks.len(), 3);

    // An empty body is a trigger with an empty conf.
    assert_eq!(
        api.post("/api/v1/dags/hello/runs", None).await.0,
        StatusCode::CREATED
    );

    let bad: [(&str, StatusCode, &str); 5] = [
        ("{oops", StatusCode::BAD_REQUEST, "bad_json"),
        // Found by schemathesis: jsonb cannot store NUL, which was a 500.
        (
            r#"{"conf": {"a": {"b\u0000": 1}}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            r#"{"conf": 3}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "conf_not_object",
        ),
        (r#"{"config": {}}"#, StatusCode::BAD_REQUEST, "bad_json"),
        (
            r#"{"logical_date": "yesterday"}"#,
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
    ];
    for (body, want, want_code) in bad {
        let (status, answer) = api.post("/api/v1/dags/hello/runs", Some(body)).await;
        assert_eq!(
            (status, code(&answer)),
            (want, want_code),
            "{body}: {answer}"
        );
        assert!(!answer["message"].as_str().unwrap().is_empty());
    }
    // The same logical date twice is a conflict.
    let again = r#"{"logical_date": "2026-05-01T17:00:00Z"}"#;
    let (status, answer) = api.post("/api/v1/dags/hello/runs", Some(again)).await;
    assert_eq!((status, code(&answer)), (StatusCode::CONFLICT, "conflict"));

    let (status, answer) = api.get("/api/v1/runs/abc").await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_run_id")
    );
    let (status, answer) = api.get("/api/v1/runs/999999").await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, answer) = api.get("/api/v1/nothing/here").await;
    assert_eq!((status, code(&answer)), (StatusCode::NOT_FOUND, "no_route"));
    let (status, answer) = api
        .call(Method::DELETE, "/api/v1/dags", Some(TOKEN), None)
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn every_call_needs_the_token_unless_reads_are_public() {
    let api = serve(&[]).await;
    for (method, path) in [
        (Method::GET, "/api/v1/dags"),
        (Method::GET, "/api/v1/runs/1"),
        (Method::POST, "/api/v1/dags/hello/pause"),
        (Method::POST, "/api/v1/dags/hello/runs"),
    ] {
        let (status, body) = api.call(method.clone(), path, None, None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{method} {path}"
        );
        let (status, body) = api.call(method.clone(), path, Some("wrong"), None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{method} {path}"
        );
        assert!(!body.to_string().contains(TOKEN));
    }
    // The health check is for load balancers: no token.
    assert_eq!(
        api.call(Method::GET, "/healthz", None, None).await.0,
        StatusCode::OK
    );

    let public = serve(&["--public-reads"]).await;
    assert_eq!(
        public.call(Method::GET, "/api/v1/dags", None, None).await.0,
        StatusCode::OK
    );
    let (status, body) = public
        .call(Method::POST, "/api/v1/dags/hello/pause", None, None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
}

#[tokio::test]
async fn a_run_s_logs_can_be_read_its_tasks_cleared_and_a_dag_backfilled() {
    let api = serve(&[]).await;
    let (_, body) = api
        .post("/api/v1/dags/hello/runs", Some(r#"{"conf": {}}"#))
        .await;
    let run_id = body["run_id"].as_i64().unwrap();
    // A worker in this process runs the shell tasks.
    common::start_runs(&api.db.pool).await;
    common::drain(&common::worker(&api.db).await).await;
    let (_, run) = api.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["state"], "success", "{run}");

    // /metrics says so too, without a token, in the OpenMetrics text format.
    let res = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = res.text().await.unwrap();
    for line in [
        r#"setlist_dag_runs{dag_id="hello",state="success"} 1"#,
        r#"setlist_task_attempts_total{kind="shell",outcome="success"} 2"#,
        r#"setlist_task_attempts_total{kind="noop",outcome="success"} 1"#,
        r#"setlist_task_instances{state="success"} 3"#,
        "# EOF",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }

    let (status, logs) = api
        .get(&format!("/api/v1/runs/{run_id}/tasks/greet/logs"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let lines = logs["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["line"].as_str().unwrap().starts_with("hello for ")),
        "{logs}"
    );
    assert_eq!(lines[0]["try_number"], 1);
    let (status, answer) = api
        .get(&format!("/api/v1/runs/{run_id}/tasks/greet/logs?try=x"))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_try")
    );
    let (status, answer) = api
        .get(&format!("/api/v1/runs/{run_id}/tasks/nope/logs"))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::NOT_FOUND, "task_not_found")
    );

    // Clearing the first task with its downstream clears all three.
    let (status, cleared) = api
        .post(
            &format!("/api/v1/runs/{run_id}/clear"),
            Some(r#"{"task_ids": ["greet"], "downstream": true}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["cleared"].as_array().unwrap().len(), 3);
    assert_eq!(
        api.get(&format!("/api/v1/runs/{run_id}")).await.1["state"],
        "running"
    );
    for (body, want, want_code) in [
        (
            r#"{"task_ids": ["nope"]}"#,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            r#"{"task_ids": []}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_tasks",
        ),
        (
            r#"{"tasks": ["greet"]}"#,
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
    ] {
        let (status, answer) = api
            .post(&format!("/api/v1/runs/{run_id}/clear"), Some(body))
            .await;
        assert_eq!(
            (status, code(&answer)),
            (want, want_code),
            "{body}: {answer}"
        );
    }

    // Marking by hand: greet (queued again after the clear) failed, so the tasks
    // below it are upstream_failed and the run fails; then greet, count and done
    // marked success make it a success again.
    let mark = |task: &'static str, body: &'static str| {
        let api = &api;
        async move {
            api.post(
                &format!("/api/v1/runs/{run_id}/tasks/{task}/state"),
                Some(body),
            )
            .await
        }
    };
    let (status, marked) = mark("greet", r#"{"state": "failed"}"#).await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    let (_, run) = api.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["tasks"][1]["state"], "upstream_failed", "{run}");
    for task in ["greet", "count", "done"] {
        let (status, marked) = mark(task, r#"{"state": "success"}"#).await;
        assert_eq!(status, StatusCode::OK, "{task}: {marked}");
    }
    let (_, run) = api.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["state"], "success", "{run}");
    sqlx::query("UPDATE setlist.task_instances SET state = 'running' WHERE run_id = $1 AND task_id = 'done'")
        .bind(run_id)
        .execute(&api.db.pool)
        .await
        .unwrap();
    for (task, body, want, want_code) in [
        (
            "done",
            r#"{"state": "success"}"#,
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "nope",
            r#"{"state": "success"}"#,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "greet",
            r#"{"state": "running"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_state",
        ),
        (
            "greet",
            r#"{"to": "success"}"#,
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
    ] {
        let (status, answer) = mark(task, body).await;
        assert_eq!(
            (status, code(&answer)),
            (want, want_code),
            "{task} {body}: {answer}"
        );
    }

    // Every five minutes from 17:00 to 17:30 (Europe/Berlin schedule, UTC dates).
    let window = r#"{"from": "2026-05-01T15:00:00Z", "to": "2026-05-01T15:30:00Z"}"#;
    let (status, done) = api.post("/api/v1/dags/hello/backfill", Some(window)).await;
    assert_eq!(status, StatusCode::CREATED, "{done}");
    assert_eq!(
        (
            done["created"].as_array().unwrap().len(),
            done["existing"].as_i64()
        ),
        (6, Some(0))
    );
    let (_, again) = api.post("/api/v1/dags/hello/backfill", Some(window)).await;
    assert_eq!(
        (
            again["created"].as_array().unwrap().len(),
            again["existing"].as_i64()
        ),
        (0, Some(6))
    );
    let backwards = r#"{"from": "2026-05-01T15:30:00Z", "to": "2026-05-01T15:00:00Z"}"#;
    let (status, answer) = api
        .post("/api/v1/dags/hello/backfill", Some(backwards))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
    );
    let (status, answer) = api
        .post("/api/v1/dags/hello/backfill", Some(r#"{"from": "soon"}"#))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_json")
    );
}

#[tokio::test]
async fn the_api_answers_as_its_openapi_document_says_under_schemathesis() {
    let schemathesis = common::tool(
        "SETLIST_SCHEMATHESIS",
        "~/.cache/setlist/tools/schemathesis-4.32.5/bin/schemathesis",
        "scripts/schemathesis.sh",
    );
    let api = serve(&[]).await;
    // Generated and mutated requests (positive and negative), then stateful
    // sequences (trigger -> read the run -> clear it): never a 5xx, and every status,
    // content type and body as documented.
    let out = tokio::process::Command::new(&schemathesis)
        .args(["run", &format!("{}/api/openapi.yaml", api.base)])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "25"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_dag_file_added_changed_or_removed_reaches_the_api_through_the_scheduler() {
    let dir = common::web::dags();
    let api = common::web::serve_dags(&dir, &[]).await;
    // The web server reads the store; the scheduler is the one that parses the folder,
    // and notices a change at its next housekeeping.
    let _scheduler = common::Procs(vec![common::spawn_setlist_with(
        &api.db,
        &dir,
        &["scheduler"],
        &[("SETLIST_SCHEDULER_HOUSEKEEPING_INTERVAL", "100ms".into())],
    )]);
    assert_eq!(api.get("/api/v1/dags/late").await.0, StatusCode::NOT_FOUND);
    let file = |description: &str| {
        format!(
            "[dag]\nid = \"late\"\ndescription = \"{description}\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n"
        )
    };
    let description = async |want: Option<&str>| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (status, dag) = api.get("/api/v1/dags/late").await;
            let got = (status == StatusCode::OK)
                .then(|| dag["description"].as_str().unwrap_or("").to_string());
            if got.as_deref() == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "wanted {want:?}, the API says {got:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    std::fs::write(dir.join("late.toml"), file("new")).unwrap();
    description(Some("new")).await;
    std::fs::write(dir.join("late.toml"), file("changed since")).unwrap();
    description(Some("changed since")).await;
    std::fs::remove_file(dir.join("late.toml")).unwrap();
    description(None).await;
    // The broken file the folder came with is reported by the scheduler's parse too.
    let (_, body) = api.get("/api/v1/dags").await;
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .unwrap()
            .contains("broken.toml:3:12: invalid schedule")),
        "{errors:?}"
    );
}
