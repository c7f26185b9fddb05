//! The one error shape of the facade: every failure, from a bad filter to a missing token, is
//! `{"error": {"status": 400, "code": "invalid_parameter", "message": "…", "param": "limit"}}`
//! (`param` only when one parameter is at fault).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

use crate::channel::AuthError;
use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// The HTTP status, repeated.
    pub status: u16,
    /// Stable machine-readable code: `unauthenticated`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `invalid_parameter`, `invalid_body`, `unavailable`, `internal`.
    pub code: String,
    /// Human-readable explanation (never contains credentials).
    pub message: String,
    /// The query parameter, filter key or body field at fault, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// A facade error, turned into [`ErrorBody`] with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    param: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
        }
    }

    /// 400: a query parameter or filter key is wrong; names it.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message).param(param)
    }

    /// 400: the request body is wrong.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    /// 401: no or a bad bearer token.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403: authenticated, not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this path",
        )
    }

    /// 503: a dependency (API server, record store, snapshot) is not available now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// Names the parameter at fault.
    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                status: self.status.as_u16(),
                code: self.code.to_owned(),
                message: self.message.clone(),
                param: self.param.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(why) => ApiError::unauthenticated(why),
            AuthError::Forbidden(why) => ApiError::forbidden(why),
            AuthError::Unavailable(why) => ApiError::unavailable(why),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // The facade checks pages before asking the store; this is the backstop.
            StoreError::InvalidPage(why) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", why)
            }
            StoreError::UnknownCursor(c) => ApiError::invalid(
                "after_id",
                format!("invalid pagination cursor {c:?}: no such item matches the filter"),
            ),
            other => {
                tracing::error!(error = %other, "record store failed a facade query");
                ApiError::unavailable("the record store failed; see the operator log")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shape_with_param_only_when_set() {
        let e = ApiError::invalid("limit", "limit must be in 1..=1000");
        assert_eq!(
            serde_json::to_value(e.body()).ok(),
            Some(serde_json::json!({"error": {
                "status": 400, "code": "invalid_parameter",
                "message": "limit must be in 1..=1000", "param": "limit"
            }}))
        );
        let e = ApiError::forbidden("no");
        assert_eq!(
            serde_json::to_value(e.body()).ok(),
            Some(
                serde_json::json!({"error": {"status": 403, "code": "forbidden", "message": "no"}})
            )
        );
    }

    #[test]
    fn store_errors_map_to_400_or_503() {
        let e: ApiError = StoreError::InvalidPage("limit must be in 1..=1000, got 0".into()).into();
        assert_eq!((e.status(), e.param), (StatusCode::BAD_REQUEST, None));
        let e: ApiError = StoreError::UnknownCursor("x".into()).into();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e: ApiError = StoreError::Decode("bad".into()).into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn unauthenticated_asks_for_a_bearer_token() {
        let r = ApiError::unauthenticated("missing").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
    }
}
