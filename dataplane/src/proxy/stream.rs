//! A streamed answer relayed to the caller event by event (translated when the dialects
//! differ). After the first byte reached the caller a failure can no longer fall back: the
//! stream ends with a well-formed error event in the caller's dialect, never a silent
//! truncation, and the target's breaker counts it (as it counts an error event inside a 200
//! stream, e.g. Anthropic `overloaded_error`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;

use super::ROUTE_HEADER;
use super::attempt::{CallGuard, upstream_error_metric_by_name};
use super::scrub::{error_chain, scrub, scrub_error_event};
use super::tracker::Tracker;
use crate::breaker::CallOutcome;
use crate::errors::{ApiError, Dialect, ErrorKind};
use crate::record::{Outcome, ToolUsage};
use crate::relay::Relay;
use crate::sse::SseParser;
use crate::state::AppState;
use crate::upstream::{Timeouts, Upstream};
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream_response(
    state: &Arc<AppState>,
    resp: reqwest::Response,
    dialect: Dialect,
    up: &Upstream,
    caller_wants_usage: bool,
    timeouts: Timeouts,
    deadline: tokio::time::Instant,
    secrets: Vec<String>,
    guard: CallGuard,
    ttfb: Duration,
    tracker: &mut Tracker,
) -> Response {
    let mut tracker = tracker.take();
    let mut relay = Relay::new(dialect, up.dialect, &up.model, caller_wants_usage);
    let name = up.name.clone();
    let state = state.clone();
    let provider = up.name.clone();
    let route_header = tracker.route_header.clone();
    let body = async_stream::stream! {
        // Held until the stream ends: the backend slot, the balancer's count, the breaker permit
        // (dropped unfinished if the caller goes away: a cancel says nothing about the target).
        let guard = guard;
        let mut parser = SseParser::default();
        let mut upstream = resp.bytes_stream();
        let failure: Option<(String, &'static str)> = loop {
            let wait = timeouts.idle.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            match tokio::time::timeout(wait, upstream.next()).await {
                Err(_) => break Some((format!("{name} sent nothing for {} ms", wait.as_millis()), "timeout")),
                Ok(None) => {
                    if let Some(ev) = parser.finish() {
                        let ev = scrub_error_event(ev, &secrets);
                        for b in relay.on_event(&ev) {
                            tracker.mark_first_token();
                            yield Ok::<Bytes, std::io::Error>(b);
                        }
                    }
                    let (tail, complete) = relay.finish();
                    for b in tail {
                        yield Ok(b);
                    }
                    break (!complete).then(|| (format!("{name} ended the stream before its end"), "stream_cut"));
                }
                Ok(Some(Err(e))) => break Some((scrub(&format!("{name} broke off the stream: {}", error_chain(&e)), &secrets), "stream_cut")),
                Ok(Some(Ok(chunk))) => match parser.push(&chunk) {
                    Ok(events) => {
                        for ev in events {
                            let ev = scrub_error_event(ev, &secrets);
                            for b in relay.on_event(&ev) {
                                tracker.mark_first_token();
                                yield Ok(b);
                            }
                        }
                        tracker.content_bytes = relay.observed().content_bytes;
                    }
                    Err(e) => break Some((format!("{name} sent an invalid stream: {e}"), "stream_cut")),
                },
            }
        };
        let seen = relay.observed().clone();
        tracker.rec.finish_reason = seen.finish_reason.clone();
        tracker.rec.tool_usages = seen.tool_calls.iter().map(|(id, name)| ToolUsage { id: id.clone(), name: name.clone() }).collect();
        tracker.content_bytes = seen.content_bytes;
        let failed = failure.is_some() || seen.error_event.is_some();
        guard.finish(if failed { CallOutcome::Failure } else { CallOutcome::Success }, ttfb);
        match (failure, seen.error_event) {
            (Some((message, kind)), _) => {
                upstream_error_metric_by_name(&state, &provider, kind);
                let e = ApiError::new(ErrorKind::Upstream, message.clone());
                yield Ok(e.sse_frame(dialect));
                tracker.usage_incomplete = true;
                tracker.finish(200, Outcome::UpstreamError, Some(message), seen.usage);
            }
            (None, Some(message)) => {
                upstream_error_metric_by_name(&state, &provider, "error_event");
                tracker.finish(200, Outcome::UpstreamError, Some(scrub(&message, &secrets)), seen.usage);
            }
            (None, None) => tracker.finish(200, Outcome::Success, None, seen.usage),
        }
    };
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(r) = route_header
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        h.insert(ROUTE_HEADER, r);
    }
    resp
}
