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
        .route("/v1/messages/count_tokens", post(count_tokens))
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
        .route("/v1/models/{*id}", get(model))
        .fallback(not_served)
        .method_not_allowed_fallback(method_not_allowed)
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

async fn count_tokens(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    proxy::count_tokens::handle(s, headers, body).await
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

/// The dialect of a request to a path that does not say it: Anthropic's when the caller sends
/// `anthropic-version` (every Anthropic SDK does), else OpenAI's.
fn dialect_of(headers: &HeaderMap) -> Dialect {
    if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

/// Longest path named in a log line or an error message.
const MAX_LOGGED_PATH: usize = 256;

/// Known API paths of other gateways and clients, as `switchyard_unsupported_requests_total`
/// labels them: a request for `PREFIX` or `PREFIX/…` counts as its label (ids and sub-resources
/// stripped). A path the API comes to serve gets a route, which wins over the fallback: drop
/// its entry here then.
pub const UNSUPPORTED_PATHS: [(&str, &str); 23] = [
    // OpenAI. `/v1/responses` and `/v1/responses/{id}` are served; the entry labels the
    // sub-resources that are not (`/v1/responses/{id}/input_items`, `…/cancel`).
    ("/v1/responses", "/v1/responses"),
    ("/v1/audio", "/v1/audio/*"),
    ("/v1/images", "/v1/images/*"),
    ("/v1/files", "/v1/files"),
    ("/v1/uploads", "/v1/uploads"),
    ("/v1/batches", "/v1/batches"),
    ("/v1/moderations", "/v1/moderations"),
    ("/v1/realtime", "/v1/realtime"),
    ("/v1/assistants", "/v1/assistants"),
    ("/v1/threads", "/v1/threads"),
    ("/v1/vector_stores", "/v1/vector_stores"),
    ("/v1/fine_tuning", "/v1/fine_tuning/*"),
    ("/v1/conversations", "/v1/conversations"),
    // Anthropic.
    ("/v1/messages/batches", "/v1/messages/batches"),
    ("/v1/complete", "/v1/complete"),
    // Ollama's own API.
    ("/api/chat", "/api/chat"),
    ("/api/generate", "/api/generate"),
    ("/api/tags", "/api/tags"),
    ("/api/embed", "/api/embed"),
    ("/api/show", "/api/show"),
    // Gemini.
    ("/v1beta/models", "/v1beta/models/*"),
    // Azure OpenAI.
    ("/openai/deployments", "/openai/deployments/*"),
    // An OpenAI base URL without `/v1`.
    ("/chat/completions", "/chat/completions"),
];

/// Label of a Bedrock runtime call (`/model/{modelId}/invoke`, `…/invoke-with-response-stream`).
const BEDROCK_INVOKE: &str = "/model/*/invoke*";
/// Label of a Bedrock Converse call (`/model/{modelId}/converse`, `…/converse-stream`).
const BEDROCK_CONVERSE: &str = "/model/*/converse*";
/// Label of any other path.
pub const OTHER_PATH: &str = "other";
/// Label of a served path called with a method it does not take.
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";

/// The `switchyard_unsupported_requests_total` label of `path` (one of [`UNSUPPORTED_PATHS`]'
/// labels, a Bedrock label, or [`OTHER_PATH`]): ASCII case, repeated and trailing slashes do
/// not matter; only the first bytes of a long path are read.
pub fn unsupported_path_label(path: &str) -> &'static str {
    let head = &path[..floor_boundary(path, 512)];
    let mut norm = String::with_capacity(head.len());
    for c in head.chars() {
        if c == '/' && norm.ends_with('/') {
            continue;
        }
        norm.push(c.to_ascii_lowercase());
    }
    let norm = norm.trim_end_matches('/');
    if let Some((_, label)) = UNSUPPORTED_PATHS.iter().find(|(prefix, _)| {
        norm.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }) {
        return label;
    }
    let segments: Vec<&str> = norm.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["model", id, op] if !id.is_empty() && op.starts_with("invoke") => BEDROCK_INVOKE,
        ["model", id, op] if !id.is_empty() && op.starts_with("converse") => BEDROCK_CONVERSE,
        _ => OTHER_PATH,
    }
}

fn floor_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Any path no route serves: 404 in the caller's dialect, counted by its known-path label, and
/// a debug line with the method and the (truncated) path; never the query string or headers,
/// which may carry credentials.
async fn not_served(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path();
    let shown = crate::classify::truncate(path, MAX_LOGGED_PATH);
    let label = unsupported_path_label(path);
    s.metrics.unsupported(label);
    tracing::debug!(method = %req.method(), path = %shown, label, "path not served");
    ApiError::new(
        ErrorKind::NotFound,
        format!("{shown} is not served by this gateway"),
    )
    .code("unsupported_path")
    .into_response_for(dialect_of(req.headers()))
}

/// A served path called with a method it does not take: 405 in the caller's dialect, counted
/// as [`METHOD_NOT_ALLOWED`].
async fn method_not_allowed(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let shown = crate::classify::truncate(req.uri().path(), MAX_LOGGED_PATH);
    s.metrics.unsupported(METHOD_NOT_ALLOWED);
    tracing::debug!(method = %req.method(), path = %shown, "method not allowed");
    let mut r = ApiError::invalid(format!("{} is not allowed on {shown}", req.method()))
        .code("method_not_allowed")
        .into_response_for(dialect_of(req.headers()));
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// `GET /v1/models`: the models the caller's workspace can reach (declared by Providers and
/// AffinityGroups of its namespace, plus models named by its MuxRules and the RouterPolicies
/// that may apply). Anthropic clients (sending `anthropic-version`) get Anthropic's list shape.
async fn models(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let dialect = dialect_of(&headers);
    let table = s.table();
    let workspace = match caller_workspace(&s, &table, &headers) {
        Ok(w) => w,
        Err(e) => return e.into_response_for(dialect),
    };
    let names = switchyard_routing::models::reachable(&table, workspace);
    let body = match dialect {
        Dialect::OpenAi => json!({
            "object": "list",
            "data": names.iter().map(|n| model_object(n, dialect)).collect::<Vec<_>>(),
        }),
        Dialect::Anthropic => json!({
            "data": names.iter().map(|n| model_object(n, dialect)).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": names.iter().next(),
            "last_id": names.iter().next_back(),
        }),
    };
    json_response(&body)
}

/// `GET /v1/models/{id}` (the id may contain `/`, as `chain/NAME` and `org/model` do): one model
/// of the `/v1/models` listing, in the same shape (Anthropic's with `anthropic-version`); a
/// model the caller's workspace cannot reach is 404 `model_not_found` (`not_found_error`).
async fn model(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let dialect = dialect_of(&headers);
    let table = s.table();
    let workspace = match caller_workspace(&s, &table, &headers) {
        Ok(w) => w,
        Err(e) => return e.into_response_for(dialect),
    };
    if !switchyard_routing::models::is_reachable(&table, workspace, &id) {
        let shown = crate::classify::truncate(&id, MAX_LOGGED_PATH);
        return ApiError::new(
            ErrorKind::NotFound,
            format!("the model `{shown}` does not exist or is not reachable from this workspace"),
        )
        .param("model")
        .code("model_not_found")
        .into_response_for(dialect);
    }
    json_response(&model_object(&id, dialect))
}

/// The caller's workspace, identified as for any request (a gateway key, the workspace header,
/// the default Workspace).
fn caller_workspace<'t>(
    s: &AppState,
    table: &'t switchyard_routing::table::RoutingTable,
    headers: &HeaderMap,
) -> Result<&'t switchyard_crds::snapshot::WorkspaceSnapshot, ApiError> {
    let info = RequestInfo {
        client: crate::classify::client_name(headers),
        ..Default::default()
    };
    identity::identify(table, headers, &info, s.settings.require_client_key).map(|(_, w)| w)
}

/// A model as each dialect lists it: OpenAI's `{id, object, created, owned_by}`, Anthropic's
/// `{type, id, display_name, created_at}`. The gateway knows no creation date: the epoch.
fn model_object(id: &str, dialect: Dialect) -> serde_json::Value {
    match dialect {
        Dialect::OpenAi => {
            json!({"id": id, "object": "model", "created": 0, "owned_by": "switchyard"})
        }
        Dialect::Anthropic => json!({
            "type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z",
        }),
    }
}

fn json_response(body: &serde_json::Value) -> Response {
    let mut r = body.to_string().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_are_labelled_without_their_ids() {
        for (path, label) in [
            ("/v1/responses", "/v1/responses"),
            ("/v1/responses/resp_123/input_items", "/v1/responses"),
            ("/v1/audio/transcriptions", "/v1/audio/*"),
            ("/v1/images/generations", "/v1/images/*"),
            ("/v1/files/file-abc/content", "/v1/files"),
            ("/v1/batches", "/v1/batches"),
            ("/v1/moderations", "/v1/moderations"),
            ("/v1/realtime", "/v1/realtime"),
            ("/v1/assistants/asst_1", "/v1/assistants"),
            ("/v1/threads/thread_1/runs", "/v1/threads"),
            ("/v1/vector_stores/vs_1/files", "/v1/vector_stores"),
            ("/v1/fine_tuning/jobs", "/v1/fine_tuning/*"),
            (
                "/v1/messages/batches/msgbatch_1/results",
                "/v1/messages/batches",
            ),
            ("/v1/complete", "/v1/complete"),
            ("/api/chat", "/api/chat"),
            ("/api/generate", "/api/generate"),
            ("/api/tags", "/api/tags"),
            (
                "/v1beta/models/gemini-2.0-flash:generateContent",
                "/v1beta/models/*",
            ),
            (
                "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke",
                BEDROCK_INVOKE,
            ),
            ("/model/m/invoke-with-response-stream", BEDROCK_INVOKE),
            ("/model/m/converse-stream", BEDROCK_CONVERSE),
            (
                "/openai/deployments/gpt4/chat/completions",
                "/openai/deployments/*",
            ),
            ("//V1/Files/", "/v1/files"),
        ] {
            assert_eq!(unsupported_path_label(path), label, "{path}");
        }
    }

    #[test]
    fn other_paths_are_other() {
        for path in [
            "/",
            "",
            "/v1/completionsx",
            "/v1/completex",
            "/v1/messages/other",
            "/v1/filesystem",
            "/model/x",
            "/model//invoke",
            "/healthz",
            "/metrics",
            "/%2e%2e/etc/passwd",
        ] {
            assert_eq!(unsupported_path_label(path), OTHER_PATH, "{path}");
        }
        let long = format!("/v1/files/{}", "é".repeat(10_000));
        assert_eq!(unsupported_path_label(&long), "/v1/files");
    }

    #[test]
    fn labels_are_a_closed_set() {
        let mut labels: std::collections::BTreeSet<&str> =
            UNSUPPORTED_PATHS.iter().map(|(_, l)| *l).collect();
        labels.extend([BEDROCK_INVOKE, BEDROCK_CONVERSE, OTHER_PATH]);
        assert_eq!(
            labels.len(),
            UNSUPPORTED_PATHS.len() + 3,
            "labels are distinct"
        );
    }
}
