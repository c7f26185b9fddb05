//! A mock TaskChain hook server: answers every `POST` with the status and JSON it was told
//! to (default `200 {"status": "ok"}`), after an optional delay, and records each request's
//! headers and JSON body.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A request the hook server received.
#[derive(Debug, Clone)]
pub struct HookRequest {
    /// Path and query.
    pub uri: String,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// JSON body (`null` when it was not JSON).
    pub body: Value,
}

impl HookRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Shared {
    answer: Mutex<(u16, Value, Duration)>,
    requests: Mutex<Vec<HookRequest>>,
}

/// A running mock hook server (stops when dropped).
#[derive(Debug)]
pub struct MockHook {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl MockHook {
    /// Starts on 127.0.0.1 (a free port).
    pub async fn start() -> anyhow::Result<MockHook> {
        let shared = Arc::new(Shared {
            answer: Mutex::new((200, json!({"status": "ok"}), Duration::ZERO)),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MockHook { addr, shared, task })
    }

    /// `http://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer every request with this status and JSON.
    pub fn respond(&self, status: u16, body: Value) {
        let mut a = self
            .shared
            .answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        a.0 = status;
        a.1 = body;
    }

    /// Wait this long before answering.
    pub fn delay(&self, d: Duration) {
        self.shared
            .answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .2 = d;
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<HookRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for MockHook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(HookRequest {
            uri: uri.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
    let (status, value, delay) = shared
        .answer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}
