//! Accept loop, routing, authentication and scripted behaviour (the answers' shapes and the
//! handlers' context are in `answer`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::answer::{Ctx, Dialect, json_response, openai_error_body, response};
use super::stream::{self, CancelGuard};
use super::{CancelPhase, State, anthropic, control, ollama, openai, responses};

/// Largest request body read (bigger ones get a 413).
const MAX_BODY: usize = 64 << 20;
/// How long [`super::MockUpstream::shutdown`] lets connections finish.
const DRAIN: Duration = Duration::from_secs(2);

pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    let http = hyper::server::conn::http1::Builder::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    let service = MockService { state: Arc::clone(&state) };
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(socket), service));
                    conns.spawn(async move {
                        let _ = conn.await;
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "mock upstream: accept failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    conns.shutdown().await;
}

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug)]
pub(crate) struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mock upstream: connection reset on purpose")
    }
}

impl std::error::Error for ResetConnection {}

#[derive(Clone)]
struct MockService {
    state: Arc<State>,
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, ResetConnection>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for MockService {
    type Response = Response<Body>;
    type Error = ResetConnection;
    type Future = HandlerFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        Box::pin(handle(Arc::clone(&self.state), req))
    }
}

/// The endpoints the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Models,
    Model,
    AnthropicModels,
    Messages,
    CountTokens,
    Responses,
    ResponseGet,
    ResponseDelete,
    Tags,
    Show,
    OllamaChat,
    Version,
    Root,
}

impl Endpoint {
    fn route(method: &Method, path: &str, headers: &HeaderMap) -> Result<Endpoint, u16> {
        let endpoint = match path {
            "/v1/chat/completions" => Endpoint::Chat,
            "/v1/completions" => Endpoint::Completions,
            "/v1/embeddings" => Endpoint::Embeddings,
            "/v1/models" if headers.contains_key("anthropic-version") => Endpoint::AnthropicModels,
            "/v1/models" => Endpoint::Models,
            "/v1/messages" => Endpoint::Messages,
            "/v1/messages/count_tokens" => Endpoint::CountTokens,
            "/v1/responses" => Endpoint::Responses,
            "/api/tags" => Endpoint::Tags,
            "/api/show" => Endpoint::Show,
            "/api/chat" => Endpoint::OllamaChat,
            "/api/version" => Endpoint::Version,
            // `/health`: what vLLM-style routers probe before they route to a worker.
            "/" | "/health" => Endpoint::Root,
            p if p.starts_with("/v1/models/") => Endpoint::Model,
            p if is_response_path(p) => {
                return match *method {
                    Method::GET => Ok(Endpoint::ResponseGet),
                    Method::DELETE => Ok(Endpoint::ResponseDelete),
                    _ => Err(405),
                };
            }
            _ => return Err(404),
        };
        let expected = match endpoint {
            Endpoint::Models
            | Endpoint::Model
            | Endpoint::AnthropicModels
            | Endpoint::Tags
            | Endpoint::Version
            | Endpoint::Root => Method::GET,
            _ => Method::POST,
        };
        if *method == expected {
            Ok(endpoint)
        } else {
            Err(405)
        }
    }

    /// The path recorded in cancellations.
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Models | Endpoint::AnthropicModels => "/v1/models",
            Endpoint::Model => "/v1/models/{id}",
            Endpoint::Messages => "/v1/messages",
            Endpoint::CountTokens => "/v1/messages/count_tokens",
            Endpoint::Responses => "/v1/responses",
            Endpoint::ResponseGet | Endpoint::ResponseDelete => "/v1/responses/{id}",
            Endpoint::Tags => "/api/tags",
            Endpoint::Show => "/api/show",
            Endpoint::OllamaChat => "/api/chat",
            Endpoint::Version => "/api/version",
            Endpoint::Root => "/",
        }
    }

    fn dialect(self) -> Dialect {
        match self {
            Endpoint::AnthropicModels | Endpoint::Messages | Endpoint::CountTokens => {
                Dialect::Anthropic
            }
            Endpoint::Tags | Endpoint::Show | Endpoint::OllamaChat | Endpoint::Version => {
                Dialect::Ollama
            }
            _ => Dialect::OpenAi,
        }
    }

    fn has_body(self) -> bool {
        matches!(
            self,
            Endpoint::Chat
                | Endpoint::Completions
                | Endpoint::Embeddings
                | Endpoint::Messages
                | Endpoint::CountTokens
                | Endpoint::Responses
                | Endpoint::Show
                | Endpoint::OllamaChat
        )
    }
}

async fn read_body(incoming: Incoming, headers: &HeaderMap) -> Result<Bytes, Option<u16>> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) {
        return Err(Some(413));
    }
    axum::body::to_bytes(Body::new(incoming), MAX_BODY)
        .await
        .map_err(|_| None)
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ResetConnection> {
    let received = Instant::now();
    let (parts, incoming) = req.into_parts();
    let path = parts.uri.path();
    if path.starts_with("/_mock/") {
        return match read_body(incoming, &parts.headers).await {
            Ok(body) => Ok(control::handle(&state, &parts.method, path, &body)),
            Err(Some(status)) => Ok(Dialect::OpenAi.error(0, status, "body too large")),
            Err(None) => Err(ResetConnection),
        };
    }
    let id = state.next_id();
    let body = match read_body(incoming, &parts.headers).await {
        Ok(body) => body,
        Err(Some(status)) => {
            return Ok(Dialect::for_path(path).error(id, status, "request body too large"));
        }
        Err(None) => return Err(ResetConnection),
    };
    state.record(id, &parts.method, &parts.uri, &parts.headers, &body);

    let endpoint = match Endpoint::route(&parts.method, path, &parts.headers) {
        Ok(endpoint) => endpoint,
        Err(status) => {
            let message = format!("mock upstream: no route for {} {path}", parts.method);
            return Ok(Dialect::for_path(path).error(id, status, &message));
        }
    };
    let dialect = endpoint.dialect();
    if let Some(response) = authenticate(&state, endpoint, &parts.headers, id) {
        return Ok(response);
    }
    let json = if endpoint.has_body() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => {
                return Ok(dialect.invalid(id, None, "the request body must be a JSON object"));
            }
            Err(error) => {
                let message = format!("could not parse the JSON body of your request: {error}");
                return Ok(dialect.invalid(id, None, &message));
            }
        }
    } else {
        Value::Null
    };
    let raw_model = json
        .get("model")
        .or_else(|| json.get("name"))
        .and_then(Value::as_str);
    let (model, mut behavior) = state.behavior(raw_model, path, &parts.headers);
    if behavior.echo_key() {
        let given = credential(&parts.headers).unwrap_or("(none)");
        let message = behavior
            .message
            .take()
            .unwrap_or_else(|| "mock upstream: scripted error.".to_owned());
        behavior.message = Some(format!("{message} Incorrect API key provided: {given}"));
    }
    let stream = json.get("stream").and_then(Value::as_bool) == Some(true);

    if let Some(ms) = behavior.latency_ms.filter(|ms| *ms > 0) {
        let mut guard = CancelGuard::new(
            Arc::clone(&state),
            id,
            endpoint.path(),
            received,
            CancelPhase::Latency,
        );
        tokio::time::sleep(Duration::from_millis(ms)).await;
        guard.disarm();
    }
    if behavior.resets() {
        return Err(ResetConnection);
    }
    if let Some(status) = behavior.status.filter(|s| *s >= 400) {
        return Ok(dialect.scripted(id, status, &behavior));
    }
    if behavior.error_body() {
        let message = behavior
            .message
            .as_deref()
            .unwrap_or("mock upstream: scripted error body");
        return Ok(json_response(
            StatusCode::OK,
            id,
            &dialect.error_body(500, message),
        ));
    }
    let content_type = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    if let Some(raw) = &behavior.raw_body {
        return Ok(response(
            StatusCode::OK,
            id,
            content_type,
            Body::from(raw.clone()),
        ));
    }
    if behavior.stall() {
        let guard = CancelGuard::new(
            Arc::clone(&state),
            id,
            endpoint.path(),
            received,
            CancelPhase::Streaming,
        );
        let mut response = response(StatusCode::OK, id, content_type, stream::stalled(guard));
        if !stream {
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(1024u32));
        }
        return Ok(response);
    }

    let ctx = Ctx {
        state,
        id,
        path: endpoint.path(),
        received,
        behavior,
        model: model.unwrap_or_default(),
    };
    Ok(match endpoint {
        Endpoint::Chat => openai::chat(&ctx, &json),
        Endpoint::Completions => openai::completions(&ctx, &json),
        Endpoint::Embeddings => openai::embeddings(&ctx, &json),
        Endpoint::Models => openai::models(&ctx),
        Endpoint::Model => openai::model(&ctx, parts.uri.path()),
        Endpoint::AnthropicModels => anthropic::models(&ctx),
        Endpoint::Messages => anthropic::messages(&ctx, &json),
        Endpoint::CountTokens => anthropic::count_tokens(&ctx, &json),
        Endpoint::Responses => responses::create(&ctx, &json),
        Endpoint::ResponseGet => responses::retrieve(&ctx, parts.uri.path()),
        Endpoint::ResponseDelete => responses::delete(&ctx, parts.uri.path()),
        Endpoint::Tags => ollama::tags(&ctx),
        Endpoint::Show => ollama::show(&ctx, &json),
        Endpoint::OllamaChat => ollama::chat(&ctx, &json),
        Endpoint::Version => ollama::version(&ctx),
        Endpoint::Root => response(
            StatusCode::OK,
            ctx.id,
            "text/plain; charset=utf-8",
            Body::from("mock upstream is running"),
        ),
    })
}

/// `/v1/responses/{id}`: one non-empty path segment after the prefix.
fn is_response_path(path: &str) -> bool {
    path.strip_prefix("/v1/responses/")
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The credential a request carried (`Authorization: Bearer`, `x-api-key`).
fn credential(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim_start_matches("Bearer ")
                .trim_start_matches("bearer ")
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
}

/// The 401/400 for a request that fails the dialect's key or version checks.
fn authenticate(
    state: &State,
    endpoint: Endpoint,
    headers: &HeaderMap,
    id: u64,
) -> Option<Response<Body>> {
    match endpoint.dialect() {
        Dialect::OpenAi if endpoint != Endpoint::Root => {
            let key = state.config.require_key.as_deref()?;
            let given = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                });
            let message = match given {
                Some(given) if given.trim() == key => return None,
                Some(_) => "Incorrect API key provided.",
                None => "You didn't provide an API key. Provide it as 'Authorization: Bearer KEY'.",
            };
            Some(json_response(
                StatusCode::UNAUTHORIZED,
                id,
                &openai_error_body(
                    message,
                    "invalid_request_error",
                    None,
                    Some("invalid_api_key"),
                ),
            ))
        }
        Dialect::Anthropic => {
            if let Some(key) = state.config.anthropic_key.as_deref() {
                let message = match headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
                    Some(given) if given.trim() == key => None,
                    Some(_) => Some("invalid x-api-key"),
                    None => Some("x-api-key header is required"),
                };
                if let Some(message) = message {
                    return Some(Dialect::Anthropic.error(id, 401, message));
                }
            }
            if headers.contains_key("anthropic-version") {
                None
            } else {
                Some(Dialect::Anthropic.error(id, 400, "anthropic-version: header is required"))
            }
        }
        _ => None,
    }
}
