//! One upstream call: build the request in the upstream's dialect, send it, and turn the answer
//! into a response for the caller (relayed as a stream, or translated whole) or a [`Failed`]
//! saying whether another attempt may fix it. The call's [`CallGuard`] (breaker permit, backend
//! slot) is finished here with what the call taught about the target: what an
//! [`UpstreamFailure`] means for the breaker, a retry and the next target is decided by it.
//!
//! The steps of [`attempt`]: [`Try::request`] (egress check, body, headers), [`Try::send`] (to
//! the answer's head), [`Try::refused`] (a non-2xx answer), then [`Try::relay_stream`] or
//! [`Try::relay_whole`].

use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard_routing::{Dialect, Endpoint};

use super::answer::{self, Fault};
use super::call::{Call, CallGuard};
use super::responses::Outbound;
use super::scrub::{Scrubber, error_chain};
use super::stream::{Ending, UpstreamEvents};
use super::tracker::Tracker;
use super::{Handled, REQUEST_ID_HEADER};
use crate::breaker::CallOutcome;
use crate::classify;
use crate::errors::{ApiError, ErrorKind};
use crate::limits::BufferPermit;
use crate::translate;
use crate::upstream::{ANTHROPIC_VERSION, Timeouts, Upstream};
use crate::upstream_failure::UpstreamFailure;

/// A failed attempt.
pub(crate) struct Failed {
    pub(crate) error: ApiError,
    /// Another target (or a retry) may succeed: connect error, timeout, 429, 5xx, all before
    /// anything reached the caller. `false`: answer the caller with `error`.
    pub(crate) next: bool,
    /// Worth retrying on the same target (see [`UpstreamFailure::retryable`]).
    pub(crate) retryable: bool,
    /// The upstream's `Retry-After`.
    pub(crate) retry_after: Option<Duration>,
}

impl Failed {
    fn final_(error: ApiError) -> Self {
        Self {
            error,
            next: false,
            retryable: false,
            retry_after: None,
        }
    }

    fn try_next(error: ApiError) -> Self {
        Self {
            error,
            next: true,
            retryable: false,
            retry_after: None,
        }
    }
}

/// How a call failed at the upstream, before anything reached the caller.
struct UpstreamFailed {
    failure: UpstreamFailure,
    /// The answer's status, when one came.
    status: Option<StatusCode>,
    /// The status the attempt's record gives.
    recorded_status: Option<u16>,
    /// What the attempt's record says.
    recorded_error: String,
    /// What the caller is told (when no other attempt serves the request).
    error: ApiError,
    retry_after: Option<Duration>,
}

/// Makes one call to `up`. `deadline` bounds the whole request (all attempts).
pub(crate) async fn attempt(
    call: &Call<'_>,
    up: &Upstream,
    timeouts: Timeouts,
    deadline: tokio::time::Instant,
    guard: CallGuard,
    tracker: &mut Tracker,
) -> Result<Handled, Failed> {
    let at = Try {
        call,
        up,
        timeouts,
        deadline,
        started: Instant::now(),
    };
    let (req, scrubber, caller_wants_usage) = at.request(tracker)?;
    let resp = match at.send(req, &scrubber).await {
        Ok(resp) => resp,
        Err(f) => return Err(at.failed(tracker, guard, at.started.elapsed(), f)),
    };
    let ttfb = at.started.elapsed();
    tracker.upstream_responded();
    if !resp.status().is_success() {
        let f = at.refused(resp, &scrubber).await;
        return Err(at.failed(tracker, guard, ttfb, f));
    }
    tracker.served_by(up);
    if call.info.stream {
        at.relay_stream(resp, scrubber, caller_wants_usage, guard, ttfb, tracker)
            .await
    } else {
        at.relay_whole(resp, scrubber, guard, tracker).await
    }
}

/// One attempt under way: the call, its upstream, its time limits and when it started.
struct Try<'c, 'a> {
    call: &'c Call<'a>,
    up: &'c Upstream,
    timeouts: Timeouts,
    deadline: tokio::time::Instant,
    started: Instant,
}

impl Try<'_, '_> {
    /// The request to the upstream, the attempt's scrubber, and whether the caller asked for
    /// the usage chunk. Egress policy before any traffic (IP-literal hosts never reach the
    /// client's resolver). A refusal is the gateway's own: the guard is dropped, so the breaker
    /// does not count it.
    fn request(
        &self,
        tracker: &mut Tracker,
    ) -> Result<(reqwest::RequestBuilder, Scrubber, bool), Failed> {
        let Call {
            state,
            endpoint,
            headers,
            body,
            info,
            caller,
            responses,
        } = *self.call;
        let up = self.up;
        let url = up.url(endpoint).map_err(Failed::final_)?;
        let url = match self.checked_url(&url) {
            Ok(u) => u,
            Err(e) => {
                tracker.attempt_failed(up, None, e.clone(), self.started.elapsed());
                return Err(Failed::try_next(ApiError::new(
                    ErrorKind::Upstream,
                    format!("{}: {e}", up.name),
                )));
            }
        };
        let (upstream_body, caller_wants_usage) = match responses.map(|r| r.outbound(up)) {
            None => upstream_body(body, endpoint.dialect(), up, info.stream),
            Some(Ok(Outbound::Native(req))) => Ok((req, false)),
            Some(Ok(Outbound::Chat(chat))) => {
                upstream_body(&chat, Dialect::OpenAi, up, info.stream)
            }
            // A feature chat completions cannot express (a built-in tool): a later target of
            // the route (a native one) may serve it; else the caller gets this 400.
            Some(Err(e)) if Outbound::unsupported(&e) => return Err(Failed::try_next(e)),
            Some(Err(e)) => Err(e),
        }
        .map_err(Failed::final_)?;
        let auth = up
            .auth_headers(caller.passthrough.as_deref())
            .map_err(Failed::final_)?;
        let scrubber = Scrubber::for_attempt(up, caller, headers);
        let mut req = state
            .client
            .get(self.timeouts.connect)
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::ACCEPT,
                if info.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .header(REQUEST_ID_HEADER, tracker.request_id())
            .body(serde_json::to_vec(&upstream_body).unwrap_or_default());
        drop(upstream_body);
        for (name, value) in auth {
            req = req.header(name, value);
        }
        Ok((self.with_headers(req), scrubber, caller_wants_usage))
    }

    /// The upstream's URL, checked against the egress policy. The URL is parsed once, here,
    /// and handed to the client as parsed.
    fn checked_url(&self, url: &str) -> Result<reqwest::Url, String> {
        reqwest::Url::parse(url)
            .map_err(|e| e.to_string())
            .and_then(|u| {
                self.call
                    .state
                    .settings
                    .egress
                    .check_url(&u)
                    .map(|()| u)
                    .map_err(|e| e.to_string())
            })
    }

    /// The Anthropic version and beta headers, and the upstream's own headers.
    fn with_headers(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let (up, headers) = (self.up, self.call.headers);
        for (name, value) in anthropic_headers(up.dialect, self.call.endpoint.dialect(), headers) {
            req = req.header(name, value);
        }
        for h in &up.headers {
            req = req.header(h.name.as_str(), h.value.expose());
        }
        req
    }

    /// Sends the request and waits for the answer's head (within the first-byte timeout and
    /// the request's deadline). Nothing came back on failure (refused, reset, TLS failure):
    /// safe to try again, nothing of an answer was produced.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        scrubber: &Scrubber,
    ) -> Result<reqwest::Response, UpstreamFailed> {
        let name = &self.up.name;
        let first_byte = self.timeouts.first_byte.min(
            self.deadline
                .saturating_duration_since(tokio::time::Instant::now()),
        );
        match tokio::time::timeout(first_byte, req.send()).await {
            Ok(Ok(resp)) => Ok(resp),
            Err(_) => Err(UpstreamFailed {
                failure: UpstreamFailure::Timeout,
                status: None,
                recorded_status: None,
                recorded_error: format!("no response within {} ms", first_byte.as_millis()),
                error: ApiError::new(
                    ErrorKind::Timeout,
                    format!("{name} did not answer within {} ms", first_byte.as_millis()),
                ),
                retry_after: None,
            }),
            Ok(Err(e)) => {
                let (failure, what) = if e.is_connect() {
                    (UpstreamFailure::Connect, "connect")
                } else {
                    (UpstreamFailure::Request, "request")
                };
                let msg = scrubber.error_text(&format!("{what} error: {}", error_chain(&e)));
                Err(UpstreamFailed {
                    failure,
                    status: None,
                    recorded_status: None,
                    error: ApiError::new(ErrorKind::Upstream, format!("{name}: {msg}")),
                    recorded_error: msg,
                    retry_after: None,
                })
            }
        }
    }

    /// A non-2xx answer: its (bounded) error body read for the message, its `Retry-After`.
    async fn refused(&self, resp: reqwest::Response, scrubber: &Scrubber) -> UpstreamFailed {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::retry::parse_retry_after(v, SystemTime::now()));
        let remaining = self
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        let bytes = read_error_body(resp, 1 << 20, self.timeouts.idle.min(remaining))
            .await
            .unwrap_or_default();
        let message = scrubber.error_text(&upstream_error_message(&bytes));
        let mut error = ApiError::new(
            kind_for_status(status),
            format!(
                "upstream {} answered {}: {message}",
                self.up.name,
                status.as_u16()
            ),
        );
        if let Some(ra) = retry_after {
            // Rounded up: never tell the caller to come back before the upstream said.
            error = error.retry_after(ra.as_secs() + u64::from(ra.subsec_nanos() > 0));
        }
        UpstreamFailed {
            failure: UpstreamFailure::of_status(status),
            status: Some(status),
            recorded_status: Some(status.as_u16()),
            recorded_error: message,
            error,
            retry_after,
        }
    }

    /// The attempt failed at the upstream: recorded, counted, and reported to the target's
    /// breaker (as slow as `latency`); the failure decides what the breaker learns, whether
    /// the target is retried and whether another target is tried.
    fn failed(
        &self,
        tracker: &mut Tracker,
        guard: CallGuard,
        latency: Duration,
        f: UpstreamFailed,
    ) -> Failed {
        tracker.attempt_failed(
            self.up,
            f.recorded_status,
            f.recorded_error,
            self.started.elapsed(),
        );
        self.call
            .state
            .metrics
            .upstream_failed(&self.up.name, f.failure);
        guard.finish(f.failure.breaker_outcome(f.status), latency);
        Failed {
            error: f.error,
            next: f.failure.next_target(f.status),
            retryable: f.failure.retryable(f.status),
            retry_after: f.retry_after,
        }
    }

    /// A 2xx stream: read until its answer started, then relayed to the caller; ended badly
    /// before the caller's response started, the attempt failed as a whole.
    async fn relay_stream(
        &self,
        resp: reqwest::Response,
        scrubber: Scrubber,
        caller_wants_usage: bool,
        guard: CallGuard,
        ttfb: Duration,
        tracker: &mut Tracker,
    ) -> Result<Handled, Failed> {
        let status = resp.status();
        let dialect = self.call.endpoint.dialect();
        let mut events = UpstreamEvents::new(
            resp,
            dialect,
            self.up,
            caller_wants_usage,
            scrubber,
            self.timeouts,
            self.deadline,
        );
        if let Some(r) = self.call.responses {
            events = events.for_responses(r.relay(self.up), r.pending(self.call.state, self.up));
        }
        let (first, ending) = events.prefetch().await;
        match ending.as_ref().and_then(Ending::failure) {
            Some((failure, message)) => Err(self.answer_failed(tracker, guard, failure, message)),
            None => {
                tracker.attempt_succeeded(self.up, status.as_u16(), self.started.elapsed());
                Ok(Handled::Stream(super::stream::stream_response(
                    self.call.state,
                    events,
                    first,
                    ending,
                    dialect,
                    guard,
                    ttfb,
                    tracker,
                )))
            }
        }
    }

    /// A 2xx answer read whole, checked and translated, and given to the caller.
    async fn relay_whole(
        &self,
        resp: reqwest::Response,
        scrubber: Scrubber,
        guard: CallGuard,
        tracker: &mut Tracker,
    ) -> Result<Handled, Failed> {
        let (state, up) = (self.call.state, self.up);
        let status = resp.status();
        let read = read_answer(
            state,
            &up.name,
            resp,
            self.timeouts,
            self.deadline,
            &scrubber,
        )
        .await;
        let answer = read.and_then(|(bytes, permit)| {
            if let Some(r) = self.call.responses {
                return r
                    .answer(state, up, bytes)
                    .map_err(|f| fault_failure(up, &scrubber, f))
                    .map(|(out, s)| (out, s, permit));
            }
            relayable(
                self.call.endpoint,
                self.call.endpoint.dialect(),
                up,
                bytes,
                &scrubber,
            )
            .map(|(out, s)| (out, s, permit))
        });
        let (out, summary, permit) = match answer {
            Ok(answer) => answer,
            Err(AnswerFailure::BufferFull(full)) => {
                // The gateway's own refusal: the guard is dropped, the breaker does not count it.
                drop(guard);
                tracker.attempt_failed(
                    up,
                    Some(status.as_u16()),
                    full.to_string(),
                    self.started.elapsed(),
                );
                state.metrics.refused("answer_buffer_full");
                return Err(Failed::final_(
                    ApiError::new(ErrorKind::Unavailable, full.to_string())
                        .code("answer_buffer_full")
                        .retry_after(1),
                ));
            }
            Err(AnswerFailure::Upstream(failure, message)) => {
                return Err(self.answer_failed(tracker, guard, failure, message));
            }
        };
        // A non-streamed call is as slow as its whole answer.
        guard.finish(CallOutcome::Success, self.started.elapsed());
        tracker.attempt_succeeded(up, status.as_u16(), self.started.elapsed());
        tracker.answered(summary);
        Ok(Handled::Done(buffered_response(out, permit)))
    }

    /// An answer that failed after its 2xx head: an upstream failure like a 5xx (counted by the
    /// breaker; the next target may serve the request, since nothing reached the caller). It
    /// is not retried on the same target when the upstream said it was an error.
    fn answer_failed(
        &self,
        tracker: &mut Tracker,
        guard: CallGuard,
        failure: UpstreamFailure,
        message: String,
    ) -> Failed {
        let error = match failure {
            UpstreamFailure::Timeout => ApiError::new(ErrorKind::Timeout, message),
            f if f.is_upstream_error() => ApiError::new(
                ErrorKind::Upstream,
                format!(
                    "upstream {} answered with an error: {message}",
                    self.up.name
                ),
            ),
            _ => ApiError::new(ErrorKind::Upstream, message),
        };
        let f = UpstreamFailed {
            failure,
            status: None,
            recorded_status: Some(200),
            recorded_error: error.message.clone(),
            error,
            retry_after: None,
        };
        self.failed(tracker, guard, self.started.elapsed(), f)
    }
}

/// A non-streamed answer as the caller gets it (checked, translated when the dialects
/// differ), and what it told about the call.
fn relayable(
    endpoint: Endpoint,
    caller: Dialect,
    up: &Upstream,
    bytes: Bytes,
    scrubber: &Scrubber,
) -> Result<(Bytes, answer::Summary), AnswerFailure> {
    let invalid = |why: String| {
        AnswerFailure::Upstream(
            UpstreamFailure::InvalidAnswer,
            format!("{} sent an invalid answer: {why}", up.name),
        )
    };
    let summary = match answer::check(endpoint, up.dialect, &bytes) {
        Ok(s) => s,
        Err(Fault::ErrorBody(message)) => {
            return Err(AnswerFailure::Upstream(
                UpstreamFailure::ErrorBody,
                scrubber.error_text(&message),
            ));
        }
        Err(Fault::Invalid(why)) => return Err(invalid(why)),
    };
    if caller == up.dialect {
        return Ok((bytes, summary));
    }
    // The translation works on a parsed copy (small: chat answers).
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    let out = match caller {
        Dialect::OpenAi => translate::anthropic_response_to_openai(&v, &up.model),
        Dialect::Anthropic => translate::openai_response_to_anthropic(&v, &up.model),
    };
    Ok((Bytes::from(out.to_string()), summary))
}

/// An answer that is not relayed as a success, as the attempt's failure.
fn fault_failure(up: &Upstream, scrubber: &Scrubber, f: Fault) -> AnswerFailure {
    match f {
        Fault::ErrorBody(message) => {
            AnswerFailure::Upstream(UpstreamFailure::ErrorBody, scrubber.error_text(&message))
        }
        Fault::Invalid(why) => AnswerFailure::Upstream(
            UpstreamFailure::InvalidAnswer,
            format!("{} sent an invalid answer: {why}", up.name),
        ),
    }
}

/// Why an answer that came with a 2xx head failed, before anything reached the caller.
enum AnswerFailure {
    /// Timed out, cut, over-long, not an answer of the dialect, or an error body (its
    /// scrubbed message).
    Upstream(UpstreamFailure, String),
    /// The gateway had no room to buffer it.
    BufferFull(crate::limits::BufferFull),
}

/// Reads a non-streamed answer whole within the budget of buffered answers, the idle timeout
/// between chunks and the request's deadline; scrubbed of the attempt's credentials.
async fn read_answer(
    state: &crate::state::AppState,
    name: &str,
    resp: reqwest::Response,
    timeouts: Timeouts,
    deadline: tokio::time::Instant,
    scrubber: &Scrubber,
) -> Result<(Bytes, BufferPermit), AnswerFailure> {
    let limit = state.settings.max_response_bytes;
    let declared = resp.content_length().and_then(|n| usize::try_from(n).ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AnswerFailure::Upstream(
            UpstreamFailure::TooLarge,
            format!("the answer is larger than {limit} bytes"),
        ));
    }
    let budget = &state.answer_buffer;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let mut permit = match declared {
        Some(n) => budget
            .reserve(n, left)
            .await
            .map_err(AnswerFailure::BufferFull)?,
        None => BufferPermit::default(),
    };
    let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0));
    let mut stream = resp.bytes_stream();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (wait, by_idle) = if timeouts.idle < left {
            (timeouts.idle, true)
        } else {
            (left, false)
        };
        let chunk = match tokio::time::timeout(wait, stream.next()).await {
            Err(_) if by_idle => {
                return Err(AnswerFailure::Upstream(
                    UpstreamFailure::Timeout,
                    format!(
                        "{name} sent nothing of its answer for {} ms",
                        wait.as_millis()
                    ),
                ));
            }
            Err(_) => {
                return Err(AnswerFailure::Upstream(
                    UpstreamFailure::Timeout,
                    format!(
                        "{name} did not finish its answer within the request's total timeout ({} ms)",
                        timeouts.total.as_millis()
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(AnswerFailure::Upstream(
                    UpstreamFailure::BodyCut,
                    scrubber
                        .error_text(&format!("{name} broke off its answer: {}", error_chain(&e))),
                ));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        let len = buf.len() + chunk.len();
        if len > limit {
            return Err(AnswerFailure::Upstream(
                UpstreamFailure::TooLarge,
                format!("the answer is larger than {limit} bytes"),
            ));
        }
        if len > buf.capacity() {
            // Room for the grown buffer is reserved before it is allocated.
            let cap = len.max(buf.capacity() * 2).min(limit);
            budget
                .grow(&mut permit, cap)
                .map_err(AnswerFailure::BufferFull)?;
            buf.reserve_exact(cap - buf.len());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((scrubber.bytes(Bytes::from(buf)), permit))
}

/// Larger bodies are handed to the connection in pieces of this size.
const PIECE: usize = 64 << 10;

/// A buffered answer as the caller's response. Its room in the budget is given back once the
/// connection took its last piece.
fn buffered_response(body: Bytes, permit: BufferPermit) -> axum::response::Response {
    let len = body.len();
    let mut resp = if len <= PIECE {
        drop(permit);
        (StatusCode::OK, body).into_response()
    } else {
        let pieces = async_stream::stream! {
            let _permit = permit;
            let mut at = 0;
            while at < len {
                let end = (at + PIECE).min(len);
                yield Ok::<Bytes, std::convert::Infallible>(body.slice(at..end));
                at = end;
            }
        };
        let mut r = axum::response::Response::new(axum::body::Body::from_stream(pieces));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        r
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The Anthropic headers of an upstream request. None for an OpenAI-dialect upstream: the
/// caller's `anthropic-version` and `anthropic-beta` (Claude Code sends
/// `claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-…`) name
/// Anthropic features the translated request does not use. For an Anthropic upstream:
/// `anthropic-version` (the caller's when it speaks Anthropic, else [`ANTHROPIC_VERSION`], the
/// one the translation targets) and the caller's `anthropic-beta` only when it speaks Anthropic
/// (an OpenAI-dialect caller's request, translated, asks for no beta).
fn anthropic_headers(
    upstream: Dialect,
    caller: Dialect,
    headers: &axum::http::HeaderMap,
) -> Vec<(&'static str, HeaderValue)> {
    if upstream != Dialect::Anthropic {
        return Vec::new();
    }
    let from_caller = |name: &str| {
        headers
            .get(name)
            .filter(|_| caller == Dialect::Anthropic)
            .cloned()
    };
    let mut out = vec![(
        "anthropic-version",
        from_caller("anthropic-version").unwrap_or(HeaderValue::from_static(ANTHROPIC_VERSION)),
    )];
    if let Some(beta) = from_caller("anthropic-beta") {
        out.push(("anthropic-beta", beta));
    }
    out
}

/// The upstream body for one attempt, and whether the caller asked for the usage chunk.
fn upstream_body(
    body: &Value,
    caller: Dialect,
    up: &Upstream,
    stream: bool,
) -> Result<(Value, bool), ApiError> {
    let caller_wants_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut out = match (caller, up.dialect) {
        (Dialect::OpenAi, Dialect::Anthropic) => {
            translate::openai_chat_to_anthropic(body, &up.model).map_err(translate_error)?
        }
        (Dialect::Anthropic, Dialect::OpenAi) => {
            let target = translate::ChatTarget::from_kind(up.kind);
            translate::anthropic_to_openai_chat(body, &up.model, target).map_err(translate_error)?
        }
        _ => {
            let mut b = body.clone();
            if let Some(o) = b.as_object_mut() {
                o.insert("model".into(), Value::String(up.model.clone()));
            }
            b
        }
    };
    if let Some(o) = out.as_object_mut() {
        o.remove("tags");
        match up.dialect {
            Dialect::OpenAi => {
                // OpenAI proper takes `max_completion_tokens` (its reasoning models refuse
                // `max_tokens`); other OpenAI-dialect servers take `max_tokens`.
                if up.is_openai
                    && !o.contains_key("max_completion_tokens")
                    && let Some(m) = o.remove("max_tokens")
                {
                    o.insert("max_completion_tokens".into(), m);
                }
                let store = o.get("store").and_then(Value::as_bool).unwrap_or(false);
                if !(up.is_openai && store) {
                    o.remove("metadata");
                }
                if stream {
                    let so = o.entry("stream_options").or_insert_with(|| json!({}));
                    if !so.is_object() {
                        // `null` (sent by some clients) would leave the record without usage.
                        *so = json!({});
                    }
                    if let Some(so) = so.as_object_mut() {
                        so.insert("include_usage".into(), Value::Bool(true));
                    }
                }
            }
            Dialect::Anthropic => {
                // Anthropic accepts only metadata.user_id.
                let user = o.get("metadata").and_then(|m| m.get("user_id")).cloned();
                o.remove("metadata");
                if let Some(u) = user {
                    o.insert("metadata".into(), json!({ "user_id": u }));
                }
            }
        }
    }
    Ok((out, caller_wants_usage))
}

fn translate_error(e: translate::TranslateError) -> ApiError {
    match e {
        translate::TranslateError::Invalid { param, message } => {
            ApiError::invalid(message).param(param)
        }
        translate::TranslateError::Unsupported(what) => ApiError::invalid(format!(
            "not supported when routed to this provider: {what}"
        )),
    }
}

pub(super) fn kind_for_status(s: StatusCode) -> ErrorKind {
    match s.as_u16() {
        400 | 422 => ErrorKind::InvalidRequest,
        401 => ErrorKind::Authentication,
        403 => ErrorKind::Permission,
        404 => ErrorKind::NotFound,
        413 => ErrorKind::TooLarge,
        429 => ErrorKind::RateLimit,
        503 | 529 => ErrorKind::Unavailable,
        504 => ErrorKind::Timeout,
        _ => ErrorKind::Upstream,
    }
}

/// The message of an upstream error body in either dialect (or its text).
pub(super) fn upstream_error_message(bytes: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let text = message.unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
    classify::truncate(text.trim(), 512)
}

/// Reads an error body (bounded), for its message.
pub(super) async fn read_error_body(
    resp: reqwest::Response,
    limit: usize,
    total: Duration,
) -> Result<Bytes, String> {
    let read = async {
        let mut buf = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("reading the response: {}", error_chain(&e)))?;
            if buf.len() + chunk.len() > limit {
                return Err(format!("response larger than {limit} bytes"));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(total, read)
        .await
        .map_err(|_| format!("response not complete within {} ms", total.as_millis()))?
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn claude_code_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        h.insert(
            "anthropic-beta",
            HeaderValue::from_static(
                "claude-code-20250219,interleaved-thinking-2025-05-14,\
                 fine-grained-tool-streaming-2025-05-14,context-management-2025-06-27",
            ),
        );
        h
    }

    fn names(out: &[(&'static str, HeaderValue)]) -> Vec<&'static str> {
        out.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn anthropic_beta_reaches_only_anthropic_upstreams_of_anthropic_callers() {
        let h = claude_code_headers();
        // Anthropic caller → Anthropic upstream: both headers as sent.
        let out = anthropic_headers(Dialect::Anthropic, Dialect::Anthropic, &h);
        assert_eq!(names(&out), ["anthropic-version", "anthropic-beta"]);
        assert_eq!(out[1].1, h["anthropic-beta"]);
        assert_eq!(out[0].1, "2023-06-01");
        // Anthropic caller (Claude Code) → OpenAI-dialect upstream: neither.
        assert!(anthropic_headers(Dialect::OpenAi, Dialect::Anthropic, &h).is_empty());
        // OpenAI caller → Anthropic upstream: our version, no beta, even if sent.
        let out = anthropic_headers(Dialect::Anthropic, Dialect::OpenAi, &h);
        assert_eq!(names(&out), ["anthropic-version"]);
        assert_eq!(out[0].1, ANTHROPIC_VERSION);
        // OpenAI caller → OpenAI upstream: nothing.
        assert!(anthropic_headers(Dialect::OpenAi, Dialect::OpenAi, &h).is_empty());
        // An Anthropic caller without headers gets the default version.
        let out = anthropic_headers(Dialect::Anthropic, Dialect::Anthropic, &HeaderMap::new());
        assert_eq!(names(&out), ["anthropic-version"]);
    }
}
