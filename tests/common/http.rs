//! An HTTP server on a real socket for the kinds that call one (`http`, `wait_http`)
//! and for webhook receivers (`notify`, alerts).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Clone, Default)]
pub struct Seen {
    pub calls: Arc<AtomicUsize>,
    pub posted: Arc<Mutex<Vec<Value>>>,
}

/// An HTTP server on a free port: `/echo` answers with what it was sent, `/status/N`
/// with N, `/flaky` 503 twice then 200, `/job` "running" twice then "done", `/hook`
/// keeps what is posted, `/big` 2 MiB of text. Returns its base URL.
pub async fn serve(seen: Seen) -> String {
    async fn echo(headers: HeaderMap, body: String) -> Json<Value> {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(v.to_str().unwrap_or_default())))
            .collect();
        Json(json!({ "headers": headers, "body": body }))
    }
    async fn status(Path(code): Path<u16>) -> (StatusCode, Json<Value>) {
        (
            StatusCode::from_u16(code).unwrap(),
            Json(json!({ "code": code })),
        )
    }
    async fn flaky(State(seen): State<Seen>) -> (StatusCode, &'static str) {
        match seen.calls.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            _ => (StatusCode::OK, "fine"),
        }
    }
    async fn job(State(seen): State<Seen>) -> Json<Value> {
        let n = seen.calls.fetch_add(1, Ordering::SeqCst);
        Json(json!({ "state": if n < 2 { "running" } else { "done" }, "polls": n + 1 }))
    }
    async fn hook(State(seen): State<Seen>, Json(body): Json<Value>) -> &'static str {
        seen.posted.lock().unwrap().push(body);
        "ok"
    }
    let app = Router::new()
        .route("/echo", get(echo).post(echo))
        .route("/status/{code}", get(status).post(status))
        .route("/flaky", get(flaky))
        .route("/job", get(job))
        .route("/hook", post(hook))
        .route("/big", get(|| async { "x".repeat(2 << 20) }))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}
