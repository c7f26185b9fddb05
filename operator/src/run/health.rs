//! Health, readiness and metrics (`--http-listen`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

#[derive(Clone)]
struct Health {
    ready: Arc<AtomicBool>,
    registry: Arc<Registry>,
}

/// `/healthz`, `/readyz` (once `ready` is set: caches synced and a snapshot compiled) and
/// `/metrics` (the text of `registry`).
pub(super) fn router(ready: Arc<AtomicBool>, registry: Registry) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Health {
            ready,
            registry: Arc::new(registry),
        })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced or no snapshot compiled yet\n",
        )
    }
}

async fn metrics_text(State(h): State<Health>) -> impl IntoResponse {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &h.registry);
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
}
