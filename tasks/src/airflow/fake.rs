//! A stand-in for Airflow's REST API in unit tests: real HTTP on 127.0.0.1, answering
//! what the test's handler says, so the client's auth, retries and paging run for real
//! on the answers that are hard to get from a live Airflow (a lost answer, a foreign
//! run, a hundred failed tasks).

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) method: String,
    /// The path with its query, as sent.
    pub(super) target: String,
    pub(super) body: Value,
}

/// The fake's answer to a request: a status and a JSON body.
type Handler = dyn FnMut(&Request) -> (u16, Value) + Send;

/// A fake Airflow on a port of its own; stops when dropped.
pub(super) struct FakeAirflow {
    pub(super) url: String,
    pub(super) requests: Arc<Mutex<Vec<Request>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeAirflow {
    pub(super) async fn start(
        handler: impl FnMut(&Request) -> (u16, Value) + Send + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let seen = requests.clone();
        let handler: Arc<Mutex<Box<Handler>>> = Arc::new(Mutex::new(Box::new(handler)));
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some(request) = read_request(&mut stream).await else {
                    continue;
                };
                let (status, answer) = (handler.lock().unwrap())(&request);
                seen.lock().unwrap().push(request);
                let text = answer.to_string();
                let response = format!(
                    "HTTP/1.1 {status} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Self {
            url,
            requests,
            server,
        }
    }

    /// The requests so far, as `METHOD target`.
    pub(super) fn calls(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect()
    }
}

impl Drop for FakeAirflow {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut words = head.split_whitespace();
    Some(Request {
        method: words.next()?.to_string(),
        target: words.next()?.to_string(),
        body: serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null),
    })
}
