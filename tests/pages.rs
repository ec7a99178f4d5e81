//! The pages in headless Chromium (Debian's, which scripts/chromium.sh installs)
//! against a running `setlist web` with real runs in its store. Screenshots are kept
//! in target/screenshots/.

mod common;

use common::web::{TOKEN, browse, serve};
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
