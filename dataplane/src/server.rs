//! The HTTP routers: the API, and health, readiness and metrics on their own listener
//! (`--admin-listen`), so callers of the API never see `/metrics` (404 there).
//!
//! API layer order (outermost first): the request id (the caller's usable `x-request-id` or a
//! new one, written into the request so the records use it too) and the `request` span carrying
//! it, in which the whole request runs, its streamed body included (see
//! `switchyard_runtime::request_id`); `Connection: close` after a refused body; panic catcher;
//! then handlers. Request bodies are read by the handlers themselves (`proxy::read_body`, the
//! one body reader) with the size limit and the body deadline, so a 413 or 408 comes back in
//! the caller's dialect.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use switchyard_routing::{Dialect, Endpoint, RequestInfo};
use switchyard_runtime::request_id::{self, Events};
use tower_http::catch_panic::CatchPanicLayer;

use crate::errors::{ApiError, ErrorKind};
use crate::identity;
use crate::proxy;
use crate::state::AppState;

/// The API router.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route(
            "/v1/chains/{name}/chat/completions",
            post(chain_completions),
        )
        .route(
            "/v1/chains/{namespace}/{name}/chat/completions",
            post(namespaced_chain_completions),
        )
        .route("/v1/messages", post(messages))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route(
            "/v1/responses",
            post(proxy::responses::create).get(proxy::responses::websocket),
        )
        .route(
            "/v1/responses/{id}",
            get(proxy::responses::get).delete(proxy::responses::delete),
        )
        .route("/v1/models", get(models))
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(ErrorKind::Internal, "internal error").into_response_for(Dialect::OpenAi)
        }))
        .layer(axum::middleware::from_fn(close_after_refused_body))
        .with_state(state);
    request_id::traced(api, Events::None)
}

/// The admin router: `/healthz`, `/readyz` and `/metrics`; other paths 404.
pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// After a refused body (408: not received in time, 413: too large) the rest of it is never
/// read, so an HTTP/1.1 connection cannot carry another request: the answer says
/// `Connection: close` and hyper closes the connection once it is sent. (HTTP/2 has no such
/// header; the stream alone ends there.)
async fn close_after_refused_body(req: Request, next: Next) -> Response {
    let http1 = req.version() <= Version::HTTP_11;
    let mut r = next.run(req).await;
    if http1
        && matches!(
            r.status(),
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        )
    {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

async fn chat_completions(
    State(s): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let chain = proxy::ChainOptions {
        name: None,
        stack_trace: crate::chain::serve::wants_stack_trace(query.as_deref(), &headers),
    };
    crate::chain::serve::chat_completions(s, chain, headers, body).await
}

/// `POST /v1/chains/{name}/chat/completions`: the TaskChain `name` of the caller's workspace
/// namespace (`namespace%2Fname` also works).
async fn chain_completions(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let chain = proxy::ChainOptions {
        name: Some(name),
        stack_trace: crate::chain::serve::wants_stack_trace(query.as_deref(), &headers),
    };
    crate::chain::serve::chat_completions(s, chain, headers, body).await
}

async fn namespaced_chain_completions(
    State(s): State<Arc<AppState>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let chain = proxy::ChainOptions {
        name: Some(format!("{namespace}/{name}")),
        stack_trace: crate::chain::serve::wants_stack_trace(query.as_deref(), &headers),
    };
    crate::chain::serve::chat_completions(s, chain, headers, body).await
}

async fn messages(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(s, Endpoint::Messages, headers, body).await
}

async fn completions(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(s, Endpoint::Completions, headers, body).await
}

async fn embeddings(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(s, Endpoint::Embeddings, headers, body).await
}

async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    if s.is_ready() {
        (StatusCode::OK, format!("ready {}\n", s.table().version())).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no snapshot loaded\n").into_response()
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let mut r = crate::metrics::encode(&s.registry).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn not_found(headers: HeaderMap) -> Response {
    let dialect = if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    ApiError::new(ErrorKind::NotFound, "no such endpoint").into_response_for(dialect)
}

/// `GET /v1/models`: the models the caller's workspace can reach (declared by Providers and
/// AffinityGroups of its namespace, plus models named by its MuxRules and the RouterPolicies
/// that may apply). Anthropic clients (sending `anthropic-version`) get Anthropic's list shape.
async fn models(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let dialect = if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    let table = s.table();
    let info = RequestInfo {
        client: crate::classify::client_name(&headers),
        ..Default::default()
    };
    let workspace = match identity::identify(&table, &headers, &info, s.settings.require_client_key)
    {
        Ok((_, w)) => w,
        Err(e) => return e.into_response_for(dialect),
    };
    let names = switchyard_routing::models::reachable(&table, workspace);
    let created = table_created();
    let body = match dialect {
        Dialect::OpenAi => json!({
            "object": "list",
            "data": names.iter().map(|n| json!({"id": n, "object": "model", "created": created, "owned_by": "switchyard"})).collect::<Vec<_>>(),
        }),
        Dialect::Anthropic => json!({
            "data": names.iter().map(|n| json!({"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"})).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": names.iter().next(),
            "last_id": names.iter().next_back(),
        }),
    };
    let mut r = body.to_string().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn table_created() -> i64 {
    0
}
