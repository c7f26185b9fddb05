//! What handlers answer with: the request context ([`Ctx`]) and the dialects' response and
//! error shapes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use super::behavior::Behavior;
use super::stream::{self, CancelGuard, Frames, Playback};
use super::{CancelPhase, State};

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-mock-request-id");

/// The API whose error shape a response uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
    Ollama,
}

impl Dialect {
    pub(crate) fn for_path(path: &str) -> Dialect {
        if path.starts_with("/v1/messages") {
            Dialect::Anthropic
        } else if path.starts_with("/api/") {
            Dialect::Ollama
        } else {
            Dialect::OpenAi
        }
    }

    /// An error response with the dialect's body for `status`.
    pub(crate) fn error(self, id: u64, status: u16, message: &str) -> Response<Body> {
        json_response(status_code(status), id, &self.error_body(status, message))
    }

    /// The dialect's error body for `status`.
    pub(crate) fn error_body(self, status: u16, message: &str) -> Value {
        match self {
            Dialect::OpenAi => {
                let (kind, code) = match status {
                    401 => ("invalid_request_error", Some("invalid_api_key")),
                    403 => ("permission_error", None),
                    404 => ("invalid_request_error", Some("model_not_found")),
                    429 => ("requests", Some("rate_limit_exceeded")),
                    500.. => ("server_error", None),
                    _ => ("invalid_request_error", None),
                };
                openai_error_body(message, kind, None, code)
            }
            Dialect::Anthropic => anthropic_error_body(anthropic_error_type(status), message),
            Dialect::Ollama => json!({ "error": message }),
        }
    }

    /// The response for a scripted `status`.
    pub(crate) fn scripted(self, id: u64, status: u16, behavior: &Behavior) -> Response<Body> {
        let message = behavior
            .message
            .clone()
            .unwrap_or_else(|| format!("mock upstream: scripted status {status}"));
        let mut response = self.error(id, status, &message);
        let retry_after = behavior
            .retry_after
            .or_else(|| matches!(status, 429 | 503).then_some(1));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    /// A 400 for a malformed request.
    pub(crate) fn invalid(self, id: u64, param: Option<&str>, message: &str) -> Response<Body> {
        match self {
            Dialect::OpenAi => json_response(
                StatusCode::BAD_REQUEST,
                id,
                &openai_error_body(message, "invalid_request_error", param, None),
            ),
            _ => self.error(id, 400, message),
        }
    }
}

pub(crate) fn openai_error_body(
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    json!({ "error": { "message": message, "type": kind, "param": param, "code": code } })
}

pub(crate) fn anthropic_error_body(kind: &str, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": kind, "message": message } })
}

fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A response with the mock's standard headers.
pub(crate) fn response(
    status: StatusCode,
    id: u64,
    content_type: &'static str,
    body: Body,
) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if id != 0 {
        headers.insert(REQUEST_ID, HeaderValue::from(id));
    }
    response
}

pub(crate) fn json_response(status: StatusCode, id: u64, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    response(status, id, "application/json", Body::from(bytes))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Everything a handler needs about the request.
pub(crate) struct Ctx {
    pub state: Arc<State>,
    pub id: u64,
    pub path: &'static str,
    pub received: Instant,
    pub behavior: Behavior,
    /// The requested model without directives (empty when the request has none).
    pub model: String,
}

impl Ctx {
    pub(crate) fn models(&self) -> &[String] {
        &self.state.config.models
    }

    pub(crate) fn cache_first_seen(&self, key: u64) -> bool {
        self.state.cache_first_seen(key)
    }

    /// A 200 JSON answer (cut halfway with `cut_after_chunks`).
    pub(crate) fn json(&self, value: &Value) -> Response<Body> {
        let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        if self.behavior.cut_after_chunks.is_none() {
            return response(
                StatusCode::OK,
                self.id,
                "application/json",
                Body::from(bytes),
            );
        }
        let len = bytes.len();
        let mut response = response(
            StatusCode::OK,
            self.id,
            "application/json",
            stream::cut_body(bytes),
        );
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        response
    }

    /// A 200 streamed answer. `error_frame` is called for the `error_event` behaviour.
    pub(crate) fn stream(
        &self,
        content_type: &'static str,
        frames: Frames,
        error_frame: impl FnOnce() -> Bytes,
    ) -> Response<Body> {
        let behavior = &self.behavior;
        let playback = Playback {
            chunk_delay: behavior
                .chunk_delay_ms
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            cut_after: behavior.cut_after_chunks,
            error_frame: behavior.error_event().then(error_frame),
            inject: behavior.inject.clone().map(Bytes::from),
        };
        let guard = CancelGuard::new(
            Arc::clone(&self.state),
            self.id,
            self.path,
            self.received,
            CancelPhase::Streaming,
        );
        let mut response = response(
            StatusCode::OK,
            self.id,
            content_type,
            stream::body(guard, frames, playback),
        );
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}
