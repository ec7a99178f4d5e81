//! The pages in headless Chromium (Debian's, which scripts/chromium.sh installs)
//! against a running `setlist web` with real runs in its store. Screenshots are kept
//! in target/screenshots/.

mod common;

use common::web::{Browser, TOKEN, browse, serve};
use fantoccini::Locator;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

#[tokio::test]
async fn the_dags_grid_and_run_pages_render_real_runs_in_chromium() {
    let api = serve(&["--public-reads"]).await;
    let (_, body) = api.post("/api/v1/dags/hello/runs", None).await;
    let run_id = body["run_id"].as_i64().unwrap();
    common::start_runs(&api.db.pool).await;
    common::drain(&common::worker(&api.db).await).await;

    let dags = browse(&format!("{}/", api.base), "dags").await;
    assert!(dags.contains(r#"<tr data-dag="hello">"#), "{dags}");
    assert!(
        dags.contains(&format!(r#"<a class="sq success" href="/runs/{run_id}""#)),
        "{dags}"
    );
    assert!(
        dags.contains("broken.toml:1:1: the DAG has no tasks"),
        "{dags}"
    );
    assert!(dags.contains("*/5 * * * * (Europe/Berlin)"), "{dags}");

    let dag = browse(&format!("{}/dags/hello", api.base), "dag_hello").await;
    let grid = &dag[dag.find(r#"id="grid""#).expect("a grid")..];
    assert_eq!(grid.matches(r#"class="sq success""#).count(), 3, "{grid}");

    let run = browse(&format!("{}/runs/{run_id}", api.base), "run").await;
    assert!(
        run.contains(r#"<span class="pill success">success</span>"#),
        "{run}"
    );
    assert_eq!(
        run.matches(r#"<span class="bar success""#).count(),
        3,
        "{run}"
    );
}

#[tokio::test]
async fn pages_need_a_login_with_the_token_unless_reads_are_public() {
    let api = serve(&[]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(format!("{}/", api.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/login");

    let wrong = client
        .post(format!("{}/login", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=wrong")
        .send()
        .await
        .unwrap();
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("That token is not the one")
    );

    let right = client
        .post(format!("{}/login", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    let cookie = right.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let page = client
        .get(format!("{}/", api.base))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(r#"<tr data-dag="hello">"#)
    );
    // The pages' forms: trigger with a conf, bad conf, pause; only with the cookie.
    let form = |path: &str, body: &str, cookie: Option<&str>| {
        let mut req = client
            .post(format!("{}{path}", api.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some(c) = cookie {
            req = req.header(COOKIE, c.to_string());
        }
        req.send()
    };
    let res = form(
        "/dags/hello/trigger",
        "conf=%7B%22region%22%3A%22EU%22%7D",
        None,
    )
    .await
    .unwrap();
    assert_eq!(res.headers()[LOCATION], "/login");
    let res = form(
        "/dags/hello/trigger",
        "conf=%7B%22region%22%3A%22EU%22%7D",
        Some(&pair),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let run_page = res.headers()[LOCATION].to_str().unwrap().to_string();
    let run_id: i64 = run_page.strip_prefix("/runs/").unwrap().parse().unwrap();
    let (_, run) = api.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["conf"], serde_json::json!({"region": "EU"}));
    let page = client
        .get(format!("{}{run_page}", api.base))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(&format!("Run {run_id} of"))
    );
    let res = form("/dags/hello/trigger", "conf=%7Boops", Some(&pair))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("conf is not JSON"));
    let res = form("/dags/hello/pause", "", Some(&pair)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(api.get("/api/v1/dags/hello").await.1["paused"], true);
    let res = form("/dags/nope/unpause", "", Some(&pair)).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // The cookie also works for the API, so the pages can call it.
    let api_call = client
        .post(format!("{}/api/v1/dags/hello/pause", api.base))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(api_call.status(), StatusCode::OK);
}

/// A person in a real browser (ChromeDriver): logs in, triggers a run with a conf
/// from the DAG page and watches it finish, marks a task failed and clears it with
/// its downstream, follows a running task's log live, and backfills from the form.
#[tokio::test]
async fn a_person_clicks_through_trigger_follow_mark_clear_and_backfill() {
    let dags = common::web::dags();
    std::fs::write(
        dags.join("slow.toml"),
        r#"[dag]
id = "slow"
[[task]]
id = "talk"
kind = "shell"
params = { command = "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.5; done" }
"#,
    )
    .unwrap();
    let api = common::web::serve_dags(&dags, &[]).await;
    let b = Browser::start().await;
    let at = |path: &str| format!("{}{path}", api.base);

    // Log in with the token.
    b.client.goto(&at("/")).await.unwrap();
    assert_eq!(b.path().await, "/login");
    b.client
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    b.click("form button[type=submit]").await;
    b.wait_text("h1", |t| t.contains("DAGs")).await;

    // Trigger with a conf from the DAG page: the run's page opens and the run is there.
    b.client.goto(&at("/dags/hello")).await.unwrap();
    let conf = b
        .client
        .find(Locator::Css("#trigger textarea"))
        .await
        .unwrap();
    conf.clear().await.unwrap();
    conf.send_keys(r#"{"from": "the browser"}"#).await.unwrap();
    b.click("#trigger button").await;
    let title = b.wait_text("h1", |t| t.starts_with("Run ")).await;
    let run_id: i64 = b
        .path()
        .await
        .strip_prefix("/runs/")
        .unwrap()
        .parse()
        .unwrap();
    assert!(title.contains("of hello"), "{title}");
    let (_, run) = api.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["conf"], serde_json::json!({"from": "the browser"}));

    // A worker runs it; the page refreshes itself until it reads success.
    common::start_runs(&api.db.pool).await;
    common::drain(&common::worker(&api.db).await).await;
    b.wait_text("#run-state", |t| t == "success").await;
    b.shot("click_run").await;

    // Mark the last task, `done`, failed: the run is judged again and fails. Then
    // clearing `count` with its downstream runs both again.
    b.click("a[href$='/tasks/done']").await;
    b.wait_text("h1", |t| t.contains("done")).await;
    b.click("#mark-failed").await;
    b.wait_text("#run-state", |t| t == "failed").await;
    assert_eq!(common::states(&api.db.pool, run_id).await["done"], "failed");
    b.client
        .goto(&at(&format!("/runs/{run_id}/tasks/count")))
        .await
        .unwrap();
    b.click("#clear-downstream").await;
    b.wait_text("#run-state", |t| t == "running").await;
    let states = common::states(&api.db.pool, run_id).await;
    assert_eq!(
        (states["greet"].as_str(), states["count"].as_str()),
        ("success", "queued"),
        "{states:?}"
    );
    common::drain(&common::worker(&api.db).await).await;
    b.wait_text("#run-state", |t| t == "success").await;

    // Follow a running task's log: the page opened while it runs gets its lines as
    // they come, then reloads when it ends.
    let (_, body) = api.post("/api/v1/dags/slow/runs", None).await;
    let slow = body["run_id"].as_i64().unwrap();
    common::start_runs(&api.db.pool).await;
    let worker = common::worker(&api.db).await;
    let running = tokio::spawn(async move { common::drain(&worker).await });
    b.client
        .goto(&at(&format!("/runs/{slow}/tasks/talk")))
        .await
        .unwrap();
    let follows = b
        .client
        .find(Locator::Css("#log"))
        .await
        .unwrap()
        .attr("data-follow")
        .await
        .unwrap();
    assert!(
        follows.is_some(),
        "the page of a task not done follows its log"
    );
    b.wait_text("#log", |t| t.contains("line 3")).await;
    b.shot("click_follow").await;
    b.wait_text("#task-state", |t| t == "success").await;
    assert!(b.text("#log").await.contains("line 6"));
    running.await.unwrap();

    // Backfill half an hour of the five-minute schedule from the form.
    b.client.goto(&at("/dags/hello")).await.unwrap();
    b.client
        .execute(
            "document.querySelector('#backfill [name=from]').value = '2026-05-01T15:00';
             document.querySelector('#backfill [name=to]').value = '2026-05-01T15:30';",
            vec![],
        )
        .await
        .unwrap();
    b.click("#backfill button").await;
    // The form posts from the DAG page back to it, so its heading says nothing of the
    // post; the runs it creates do (a deadline, not a bare sleep).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let backfilled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM setlist.dag_runs WHERE dag_id = 'hello' AND run_type = 'backfill'",
        )
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
        if backfilled == 6 {
            break;
        }
        assert!(
            backfilled < 6 && std::time::Instant::now() < deadline,
            "{backfilled} backfill runs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    b.wait_text("h1", |t| t.starts_with("hello")).await;

    // The DAG page draws its graph (three boxes, the latest run's states) and the
    // durations of its finished runs.
    b.client.goto(&at("/dags/hello")).await.unwrap();
    let boxes = b
        .client
        .find_all(Locator::Css("#graph rect"))
        .await
        .unwrap();
    assert_eq!(boxes.len(), 3);
    let bars = b
        .client
        .execute(
            "return Chart.getChart(document.getElementById('durations')).data.datasets[0].data.length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bars, serde_json::json!(1), "one finished run of hello");
    b.shot("click_dag").await;

    // Pause from the DAG's own page: it comes back to that page, paused.
    b.click("#pause button").await;
    b.wait_text("#pause", |t| t.contains("unpause")).await;
    assert_eq!(b.path().await, "/dags/hello");
    assert_eq!(api.get("/api/v1/dags/hello").await.1["paused"], true);
    b.client.close().await.unwrap();
}

/// With the broker down, the health page still shows every stage the state store
/// and warehouse know and says the broker did not answer, instead of failing.
#[tokio::test]
async fn the_health_page_says_so_when_the_broker_does_not_answer() {
    let closed = format!("127.0.0.1:{}", common::free_port());
    let api = common::web::serve_dags_env(
        &common::web::dags(),
        &["--public-reads"],
        &[("SETLIST_KAFKA_BROKERS", closed)],
    )
    .await;
    let health = browse(&format!("{}/health", api.base), "health_broker_down").await;
    assert!(health.contains(r#"id="broker-error""#), "{health}");
    assert!(health.contains("The broker did not answer"), "{health}");
    assert!(
        health.contains(r#"<strong id="lag">?</strong>"#),
        "{health}"
    );
}

#[tokio::test]
async fn a_mapped_task_is_one_row_that_opens_into_its_instances_and_a_wait_shows_waiting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mapped.toml"),
        r#"
        [dag]
        id = "mapped"
        [[task]]
        id = "each"
        kind = "noop"
        map_over = ["a", "b", "c"]
        [[task]]
        id = "later"
        kind = "wait_until"
        params = { target_time = "2999-01-01T00:00:00Z" }
        [[task]]
        id = "train"
        kind = "noop"
        queue = "gpu"
    "#,
    )
    .unwrap();
    let api = common::web::serve_dags(dir.path(), &["--public-reads"]).await;
    let (_, body) = api.post("/api/v1/dags/mapped/runs", None).await;
    let run_id = body["run_id"].as_i64().unwrap();
    common::start_runs(&api.db.pool).await;
    common::drain(&common::worker(&api.db).await).await;

    let run = browse(&format!("{}/runs/{run_id}", api.base), "run_mapped").await;
    assert!(
        run.contains(r#"<details id="mapped-each"><summary>3 instances: 3 success</summary>"#),
        "{run}"
    );
    // The mapped task is one row of the task table; its instances are inside it.
    let table = &run[run.find(r#"id="tasks""#).unwrap()..];
    assert_eq!(table.matches(r#"<span class="bar "#).count(), 3, "{table}");
    assert!(
        run.contains(&format!(r#"href="/runs/{run_id}/tasks/each%5B2%5D""#)),
        "{run}"
    );
    assert!(
        run.contains(r#"<span class="pill waiting">waiting</span>"#),
        "{run}"
    );
    // No worker serves the gpu queue: the page says so.
    assert!(
        run.contains("no worker for queue gpu with kind noop"),
        "{run}"
    );
    let instance = browse(
        &format!("{}/runs/{run_id}/tasks/each%5B1%5D", api.base),
        "instance",
    )
    .await;
    assert!(
        instance.contains(r#"<span class="pill success" id="task-state">success</span>"#),
        "{instance}"
    );
}

#[tokio::test]
async fn a_task_group_is_one_box_of_the_graph_and_one_grid_row_that_opens_into_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("grouped.toml"),
        r#"
        [dag]
        id = "grouped"
        [[task]]
        id = "start"
        kind = "noop"
        [[task]]
        id = "extract_a"
        kind = "noop"
        group = "extract"
        depends_on = ["start"]
        [[task]]
        id = "extract_b"
        kind = "shell"
        group = "extract"
        depends_on = ["start"]
        params = { command = "exit 1" }
        [[task]]
        id = "load"
        kind = "noop"
        depends_on = ["group:extract"]
    "#,
    )
    .unwrap();
    let api = common::web::serve_dags(dir.path(), &["--public-reads"]).await;
    let (_, body) = api.post("/api/v1/dags/grouped/runs", None).await;
    assert!(body["run_id"].is_i64(), "{body}");
    common::start_runs(&api.db.pool).await;
    common::drain(&common::worker(&api.db).await).await;

    let b = Browser::start().await;
    b.client
        .goto(&format!("{}/dags/grouped", api.base))
        .await
        .unwrap();
    let graph = b
        .client
        .find(Locator::Css("#graph"))
        .await
        .unwrap()
        .html(false)
        .await
        .unwrap();
    // Three boxes: start, the group (failed, as one of its tasks), load.
    assert_eq!(graph.matches("<rect").count(), 3, "{graph}");
    assert!(
        graph.contains("<title>extract (2 tasks): failed</title>"),
        "{graph}"
    );
    let member = Locator::Css(r#"#grid tr.member[data-group="extract"]"#);
    assert!(
        !b.client
            .find(member)
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    b.click("#grid tr.group-row button.fold").await;
    let rows = b.client.find_all(member).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].is_displayed().await.unwrap());
    assert_eq!(rows[1].text().await.unwrap(), "extract_b");
    b.shot("dag_grouped").await;
}
