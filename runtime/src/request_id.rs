//! The request id: every request gets one (the caller's `x-request-id` when it is usable, else
//! a new UUIDv7), and runs inside a `request` span carrying it, so every line logged while the
//! request is handled — its response body streamed included — names it.
//!
//! [`traced`] puts both on a router: [`ensure`] (outer) writes the id into the request's
//! `x-request-id` header, so handlers reading that header (the data plane's records) use the
//! same id as the logs, and into the response when the handler did not; the tower-http
//! `TraceLayer` (inner) opens the span from that header.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use http::{HeaderMap, HeaderValue};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The request id header (propagated or generated).
pub const HEADER: &str = "x-request-id";

/// Longest caller-sent id kept.
const MAX_LEN: usize = 128;

/// The request id of `headers`: the caller's `x-request-id` when it is 1 to 128 printable
/// ASCII characters, else a new UUIDv7.
pub fn of(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_LEN && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// Middleware: sets the request's `x-request-id` to [`of`] its headers (replacing an unusable
/// one), and puts it on the response unless the handler set one.
pub async fn ensure(mut req: Request, next: Next) -> Response {
    let id = of(req.headers());
    let value = HeaderValue::from_str(&id).ok();
    if let Some(v) = &value {
        req.headers_mut().insert(HEADER, v.clone());
    }
    let mut r = next.run(req).await;
    if let Some(v) = value
        && !r.headers().contains_key(HEADER)
    {
        r.headers_mut().insert(HEADER, v);
    }
    r
}

/// The span of a request: `request{id, method, path}` (the path without the query, which may
/// carry what logs must not).
pub fn span<B>(req: &http::Request<B>) -> Span {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        id = %id,
        method = %req.method(),
        path = %req.uri().path()
    )
}

/// Which events the tracing layer logs besides opening the span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Events {
    /// None: the span only (the handlers log what matters).
    None,
    /// tower-http's defaults: request and response at DEBUG, a 5xx answer at ERROR.
    Default,
}

/// `router` with every request handled inside its [`span`], its id set by [`ensure`].
pub fn traced(router: Router, events: Events) -> Router {
    let make_span = |r: &Request<Body>| span(r);
    let router = match events {
        Events::Default => router.layer(TraceLayer::new_for_http().make_span_with(make_span)),
        Events::None => router.layer(
            TraceLayer::new_for_http()
                .make_span_with(make_span)
                .on_request(())
                .on_response(())
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        ),
    };
    router.layer(middleware::from_fn(ensure))
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn keeps_a_usable_id_and_replaces_others() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(of(&h), "abc-123");
        for bad in ["", "has space", &"x".repeat(129)] {
            h.insert(HEADER, HeaderValue::from_str(bad).unwrap());
            let id = of(&h);
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        assert!(uuid::Uuid::parse_str(&of(&HeaderMap::new())).is_ok());
    }

    async fn call(router: Router, id: Option<&str>) -> (Response, String) {
        let captured = crate::telemetry::Captured::default();
        let _guard = tracing::subscriber::set_default(captured.subscriber(tracing::Level::INFO));
        let mut req = http::Request::get("/x?secret=1");
        if let Some(id) = id {
            req = req.header(HEADER, id);
        }
        let r = traced(router, Events::None)
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        (r, captured.text())
    }

    #[tokio::test]
    async fn handler_logs_and_sees_the_id_and_the_answer_carries_it() {
        let router = Router::new().route(
            "/x",
            get(|h: HeaderMap| async move {
                tracing::info!("deep in the handler");
                h.get(HEADER).unwrap().to_str().unwrap().to_owned()
            }),
        );
        let (r, logs) = call(router.clone(), Some("caller-7")).await;
        assert_eq!(r.headers()[HEADER], "caller-7");
        let line = logs.lines().find(|l| l.contains("deep in the handler"));
        let line = line.unwrap_or_else(|| panic!("{logs}"));
        assert!(line.contains("id=caller-7"), "{line}");
        assert!(line.contains("path=/x"), "{line}");
        assert!(!logs.contains("secret"), "no query in the span: {logs}");

        let (r, logs) = call(router, None).await;
        let id = r.headers()[HEADER].to_str().unwrap().to_owned();
        let body = text(r).await;
        assert_eq!(body, id, "the handler saw the id the answer names");
        assert!(logs.contains(&format!("id={id}")), "{logs}");
    }

    async fn text(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
