//! Errors the data plane answers itself, rendered in the caller's dialect: OpenAI
//! `{"error":{message,type,param,code}}` or Anthropic `{"type":"error","error":{type,message}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchyard_routing::{Dialect, RoutingError};

/// What went wrong, as a category shared by both dialects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed or invalid request (400).
    InvalidRequest,
    /// Missing or bad credentials (401).
    Authentication,
    /// Not allowed (403).
    Permission,
    /// No such model, route, chain or workspace (404).
    NotFound,
    /// Body too large (413).
    TooLarge,
    /// The request body did not arrive in time (408).
    RequestTimeout,
    /// A limit was hit (429).
    RateLimit,
    /// The gateway failed (500).
    Internal,
    /// The upstream failed (502).
    Upstream,
    /// No capacity / not ready (503).
    Unavailable,
    /// The upstream timed out (504).
    Timeout,
}

impl ErrorKind {
    /// HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Authentication => StatusCode::UNAUTHORIZED,
            Self::Permission => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Upstream => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::NotFound | Self::TooLarge | Self::RequestTimeout => {
                "invalid_request_error"
            }
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::RateLimit => "rate_limit_error",
            Self::Internal | Self::Upstream | Self::Timeout => "api_error",
            Self::Unavailable => "service_unavailable",
        }
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::RequestTimeout => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::NotFound => "not_found_error",
            Self::TooLarge => "request_too_large",
            Self::RateLimit => "rate_limit_error",
            Self::Internal | Self::Upstream | Self::Timeout => "api_error",
            Self::Unavailable => "overloaded_error",
        }
    }
}

/// An error answered by the gateway. Messages must never contain credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// Category.
    pub kind: ErrorKind,
    /// Human-readable message.
    pub message: String,
    /// Offending parameter, when one is to blame.
    pub param: Option<String>,
    /// Machine-readable code (OpenAI `code`), e.g. `model_not_found`.
    pub code: Option<&'static str>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// Sets the parameter.
    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets the code.
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Sets Retry-After.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The JSON body in a dialect.
    pub fn body(&self, dialect: Dialect) -> serde_json::Value {
        match dialect {
            Dialect::OpenAi => json!({"error": {
                "message": self.message,
                "type": self.kind.openai_type(),
                "param": self.param,
                "code": self.code,
            }}),
            Dialect::Anthropic => json!({"type": "error", "error": {
                "type": self.kind.anthropic_type(),
                "message": self.message,
            }}),
        }
    }

    /// The response in a dialect.
    pub fn into_response_for(self, dialect: Dialect) -> Response {
        let body = self.body(dialect).to_string();
        let mut resp = (self.kind.status(), body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }

    /// The error as one SSE frame in a dialect, to end a stream that already started.
    pub fn sse_frame(&self, dialect: Dialect) -> bytes::Bytes {
        let body = self.body(dialect).to_string();
        match dialect {
            Dialect::OpenAi => bytes::Bytes::from(format!("data: {body}\n\n")),
            Dialect::Anthropic => bytes::Bytes::from(format!("event: error\ndata: {body}\n\n")),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<RoutingError> for ApiError {
    fn from(e: RoutingError) -> Self {
        let message = e.to_string();
        match e {
            RoutingError::KeyRequired => {
                ApiError::new(ErrorKind::Authentication, message).code("invalid_api_key")
            }
            RoutingError::KeyBoundElsewhere { .. } => ApiError::new(ErrorKind::Permission, message),
            RoutingError::BoundWorkspaceMissing => ApiError::new(ErrorKind::Internal, message),
            RoutingError::WorkspaceNotFound(_) | RoutingError::NoDefaultWorkspace => {
                ApiError::new(ErrorKind::NotFound, message).code("workspace_not_found")
            }
            RoutingError::AmbiguousWorkspace(_) => ApiError::invalid(message),
            RoutingError::NoRoute { .. } => ApiError::new(ErrorKind::NotFound, message)
                .param("model")
                .code("model_not_found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_and_anthropic_shapes() {
        let e = ApiError::new(ErrorKind::NotFound, "no route")
            .param("model")
            .code("model_not_found");
        assert_eq!(
            e.body(Dialect::OpenAi),
            json!({"error":{"message":"no route","type":"invalid_request_error","param":"model","code":"model_not_found"}})
        );
        assert_eq!(
            e.body(Dialect::Anthropic),
            json!({"type":"error","error":{"type":"not_found_error","message":"no route"}})
        );
    }

    #[test]
    fn retry_after_header() {
        let r = ApiError::new(ErrorKind::RateLimit, "slow down")
            .retry_after(7)
            .into_response_for(Dialect::OpenAi);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
    }
}
