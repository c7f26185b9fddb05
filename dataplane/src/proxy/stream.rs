//! A streamed answer relayed to the caller event by event (translated when the dialects
//! differ). Every event is scrubbed of the attempt's credentials and checked against the
//! upstream's dialect before it is relayed.
//!
//! The stream is read until its answer started (its first content, or a few events) before the
//! caller's response starts ([`UpstreamEvents::prefetch`]): an upstream that answers 200 and
//! then an error event or a broken stream has sent the caller nothing yet, so the attempt fails
//! like any other and the next target may serve the request. After the first byte reached the caller a
//! failure can no longer fall back: the stream ends with one well-formed error event in the
//! caller's dialect and nothing after it, and the target's breaker counts it (as it counts an
//! error event inside a 200 stream, e.g. Anthropic `overloaded_error`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use switchyard_routing::Dialect;

use super::ROUTE_HEADER;
use super::answer::Summary;
use super::call::CallGuard;
use super::scrub::{Scrubber, error_chain};
use super::tracker::Tracker;
use crate::breaker::CallOutcome;
use crate::errors::{ApiError, ErrorKind};
use crate::record::ToolUsage;
use crate::relay::Relay;
use crate::sse::SseParser;
use crate::state::AppState;
use crate::upstream::{Timeouts, Upstream};
use crate::upstream_failure::UpstreamFailure;

/// Most events held back before the caller's response starts.
pub(crate) const PREFETCH_EVENTS: usize = 8;
/// Most bytes held back before the caller's response starts.
pub(crate) const PREFETCH_BYTES: usize = 16 << 10;

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// How an upstream stream ended.
#[derive(Debug, Clone)]
pub(crate) enum Ending {
    /// Its proper end.
    Complete,
    /// The upstream's own error event (relayed to the caller, scrubbed).
    ErrorEvent(String),
    /// Broken: timed out, cut, ended early, or not a stream of its dialect (`Timeout`,
    /// `StreamCut`, `InvalidStream`). The message is scrubbed.
    Broken(String, UpstreamFailure),
}

impl Ending {
    /// How the stream failed, and its message; `None` for its proper end.
    pub(crate) fn failure(&self) -> Option<(UpstreamFailure, String)> {
        match self {
            Self::Complete => None,
            Self::ErrorEvent(m) => Some((UpstreamFailure::ErrorEvent, m.clone())),
            Self::Broken(m, f) => Some((*f, m.clone())),
        }
    }
}

/// An upstream's SSE answer being read: parsed, scrubbed, checked and relayed in the caller's
/// dialect.
pub(crate) struct UpstreamEvents {
    name: String,
    body: ByteStream,
    parser: SseParser,
    relay: Relay,
    scrubber: Scrubber,
    timeouts: Timeouts,
    deadline: tokio::time::Instant,
    /// Keeps a Responses API answer once its stream completed.
    store: Option<super::responses::PendingStore>,
}

impl UpstreamEvents {
    pub(crate) fn new(
        resp: reqwest::Response,
        caller: Dialect,
        up: &Upstream,
        caller_wants_usage: bool,
        scrubber: Scrubber,
        timeouts: Timeouts,
        deadline: tokio::time::Instant,
    ) -> Self {
        Self {
            name: up.name.clone(),
            body: Box::pin(resp.bytes_stream()),
            parser: SseParser::default(),
            relay: Relay::new(caller, up.dialect, &up.model, caller_wants_usage),
            scrubber,
            timeouts,
            deadline,
            store: None,
        }
    }

    /// The stream of a Responses API call: relayed by `relay`, its final response kept by
    /// `store`.
    pub(crate) fn for_responses(
        mut self,
        relay: Relay,
        store: Option<super::responses::PendingStore>,
    ) -> Self {
        self.relay = relay;
        self.store = store;
        self
    }

    /// Reads until the answer has started: its first generated content, or
    /// [`PREFETCH_EVENTS`] events or [`PREFETCH_BYTES`] for the caller (a stream that begins
    /// with a role chunk, pings or reasoning), or the end of the stream.
    pub(crate) async fn prefetch(&mut self) -> (Vec<Bytes>, Option<Ending>) {
        let mut first: Vec<Bytes> = Vec::new();
        loop {
            let (out, end) = self.next().await;
            first.extend(out);
            let bytes: usize = first.iter().map(Bytes::len).sum();
            if end.is_some()
                || self.relay.observed().content_bytes > 0
                || first.len() >= PREFETCH_EVENTS
                || bytes >= PREFETCH_BYTES
            {
                return (first, end);
            }
        }
    }

    /// The next bytes for the caller, and how the stream ended once it did.
    async fn next(&mut self) -> (Vec<Bytes>, Option<Ending>) {
        let now = tokio::time::Instant::now();
        let left = self.deadline.saturating_duration_since(now);
        let (wait, by_idle) = if self.timeouts.idle < left {
            (self.timeouts.idle, true)
        } else {
            (left, false)
        };
        let name = self.name.clone();
        match tokio::time::timeout(wait, self.body.next()).await {
            Err(_) if by_idle => (
                Vec::new(),
                Some(Ending::Broken(
                    format!("{name} sent nothing for {} ms", wait.as_millis()),
                    UpstreamFailure::Timeout,
                )),
            ),
            Err(_) => (
                Vec::new(),
                Some(Ending::Broken(
                    format!(
                        "{name} did not finish the stream within the request's total timeout ({} ms)",
                        self.timeouts.total.as_millis()
                    ),
                    UpstreamFailure::Timeout,
                )),
            ),
            Ok(None) => {
                let mut out = Vec::new();
                if let Some(ev) = self.parser.finish()
                    && let Some(end) = self.relay_event(ev, &mut out)
                {
                    return (out, Some(end));
                }
                let (tail, complete) = self.relay.finish();
                out.extend(tail);
                let end = match &self.relay.observed().error_event {
                    Some(m) => Ending::ErrorEvent(m.clone()),
                    None if complete => Ending::Complete,
                    None => Ending::Broken(
                        format!("{name} ended the stream before its end"),
                        UpstreamFailure::StreamCut,
                    ),
                };
                (out, Some(end))
            }
            Ok(Some(Err(e))) => (
                Vec::new(),
                Some(Ending::Broken(
                    self.scrubber
                        .error_text(&format!("{name} broke off the stream: {}", error_chain(&e))),
                    UpstreamFailure::StreamCut,
                )),
            ),
            Ok(Some(Ok(chunk))) => match self.parser.push(&chunk) {
                Ok(events) => {
                    let mut out = Vec::new();
                    for ev in events {
                        if let Some(end) = self.relay_event(ev, &mut out) {
                            return (out, Some(end));
                        }
                    }
                    (out, None)
                }
                Err(e) => (
                    Vec::new(),
                    Some(Ending::Broken(
                        format!("{name} sent an invalid stream: {e}"),
                        UpstreamFailure::InvalidStream,
                    )),
                ),
            },
        }
    }

    /// Relays one event into `out`; `Some` when the stream ends with it (an upstream error
    /// event, which nothing may follow, or an event that is not of the dialect).
    fn relay_event(&mut self, ev: crate::sse::SseEvent, out: &mut Vec<Bytes>) -> Option<Ending> {
        let ev = self.scrubber.event(ev);
        match self.relay.on_event(&ev) {
            Ok(bytes) => {
                out.extend(bytes);
                self.relay
                    .observed()
                    .error_event
                    .as_ref()
                    .map(|m| Ending::ErrorEvent(self.scrubber.error_text(m)))
            }
            Err(fault) => Some(Ending::Broken(
                self.scrubber
                    .error_text(&format!("{} sent an invalid stream: {fault}", self.name)),
                UpstreamFailure::InvalidStream,
            )),
        }
    }
}

/// The caller's streamed response: `first` (what [`UpstreamEvents::prefetch`] read), then the
/// rest of the upstream stream; `ending` when the prefetch already saw the end.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream_response(
    state: &Arc<AppState>,
    mut events: UpstreamEvents,
    first: Vec<Bytes>,
    ending: Option<Ending>,
    dialect: Dialect,
    guard: CallGuard,
    ttfb: Duration,
    tracker: &mut Tracker,
) -> Response {
    let mut tracker = tracker.take();
    let state = state.clone();
    let route_header = tracker.route_header().map(str::to_owned);
    let body = async_stream::stream! {
        // Held until the stream ends: the backend slot, the balancer's count, the breaker permit
        // (dropped unfinished if the caller goes away: a cancel says nothing about the target).
        let guard = guard;
        if !first.is_empty() {
            tracker.mark_first_token();
        }
        for b in first {
            yield Ok::<Bytes, std::io::Error>(b);
        }
        let ending = match ending {
            Some(e) => e,
            None => loop {
                let (out, end) = events.next().await;
                if !out.is_empty() {
                    tracker.mark_first_token();
                }
                for b in out {
                    yield Ok(b);
                }
                tracker.relayed(events.relay.observed().content_bytes);
                if let Some(e) = end {
                    break e;
                }
            },
        };
        let seen = events.relay.observed().clone();
        let failure = ending.failure();
        let outcome = match failure {
            None => CallOutcome::Success,
            Some((f, _)) => f.breaker_outcome(None),
        };
        guard.finish(outcome, ttfb);
        if let Some((f, _)) = &failure {
            state.metrics.upstream_failed(&events.name, *f);
        }
        if let Ending::Broken(message, _) = &ending {
            // The upstream's own error event was relayed; a break gets one of the gateway's.
            let e = ApiError::new(ErrorKind::Upstream, message.clone());
            for b in events.relay.error_frame(&e, dialect) {
                yield Ok(b);
            }
        }
        if failure.is_none()
            && let Some(store) = events.store.take()
            && let Some(response) = events.relay.final_response()
        {
            store.complete(response);
        }
        let summary = Summary {
            usage: seen.usage,
            finish_reason: seen.finish_reason,
            tools: seen.tool_calls.into_iter().map(|(id, name)| ToolUsage { id, name }).collect(),
        };
        tracker.stream_ended(summary, seen.content_bytes, failure);
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
