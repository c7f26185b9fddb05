//! One upstream call: build the request in the upstream's dialect, send it, and turn the answer
//! into a response for the caller (relayed as a stream, or translated whole) or a [`Failed`]
//! saying whether another attempt may fix it. The call's [`CallGuard`] (breaker permit, backend
//! slot) is finished here with what the call taught about the target.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard_routing::balance::InFlight;
use switchyard_routing::{Dialect, Endpoint, RequestInfo};

use super::answer::{self, Fault};
use super::scrub::{Scrubber, error_chain};
use super::stream::{Ending, UpstreamEvents};
use super::tracker::Tracker;
use super::{Handled, REQUEST_ID_HEADER};
use crate::breaker::{CallOutcome, Permit};
use crate::classify;
use crate::errors::{ApiError, ErrorKind};
use crate::identity::Caller;
use crate::limits::BufferPermit;
use crate::limits::ConcurrencyPermit;
use crate::record::{Attempt, Outcome};
use crate::state::AppState;
use crate::translate;
use crate::upstream::{ANTHROPIC_VERSION, Timeouts, Upstream};

/// What an upstream call holds while it runs. Finished with the call's outcome; dropped
/// unfinished (the caller went away, the gateway refused), the breaker ignores the call.
pub(crate) struct CallGuard {
    pub(crate) permit: Permit,
    /// The backend slot, held (not read) until the call ends.
    pub(crate) _slot: ConcurrencyPermit,
    /// The balancer's count of outstanding calls, held until the call ends.
    pub(crate) _in_flight: Option<InFlight>,
}

impl CallGuard {
    /// Reports the call to the target's breaker and frees the backend slot.
    pub(crate) fn finish(self, outcome: CallOutcome, latency: Duration) {
        self.permit.finish(outcome, latency, Instant::now());
    }
}

/// A failed attempt.
pub(crate) struct Failed {
    pub(crate) error: ApiError,
    /// Another target (or a retry) may succeed: connect error, timeout, 429, 5xx, all before
    /// anything reached the caller. `false`: answer the caller with `error`.
    pub(crate) next: bool,
    /// Worth retrying on the same target (see [`crate::retry::retryable`]).
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

/// Whether an upstream status says something about the target's transient health (counted by
/// its breaker): 5xx, 429 and 408. Other 4xx are about the request (400) or the configuration
/// (401/403: a wrong key); a cooldown fixes neither, and the caller is better served by the
/// upstream's own message than by `circuit_open`.
fn counts_against_target(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
        )
}

/// Everything one attempt needs besides the upstream.
pub(crate) struct Call<'a> {
    pub(crate) state: &'a Arc<AppState>,
    pub(crate) endpoint: Endpoint,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a Value,
    pub(crate) info: &'a RequestInfo,
    pub(crate) caller: &'a Caller,
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
    let Call {
        state,
        endpoint,
        headers,
        body,
        info,
        caller,
    } = *call;
    let dialect = endpoint.dialect();
    let started = Instant::now();
    let record_attempt = |tracker: &mut Tracker, status: Option<u16>, error: Option<String>| {
        tracker.rec.attempts.push(Attempt {
            target: up.target_label.clone(),
            backend: up.backend.clone(),
            model: up.model.clone(),
            status,
            error,
            latency_ms: started.elapsed().as_millis() as u64,
        });
    };
    let url = up.url(endpoint).map_err(Failed::final_)?;
    // Egress policy before any traffic (IP-literal hosts never reach the client's resolver).
    // A refusal is the gateway's own: the guard is dropped, so the breaker does not count it.
    // The URL is parsed once, here, and handed to the client as parsed.
    let url = match reqwest::Url::parse(&url)
        .map_err(|e| e.to_string())
        .and_then(|u| {
            state
                .settings
                .egress
                .check_url(&u)
                .map(|()| u)
                .map_err(|e| e.to_string())
        }) {
        Ok(u) => u,
        Err(e) => {
            record_attempt(tracker, None, Some(e.clone()));
            return Err(Failed::try_next(ApiError::new(
                ErrorKind::Upstream,
                format!("{}: {e}", up.name),
            )));
        }
    };
    let (upstream_body, caller_wants_usage) =
        upstream_body(body, dialect, up, info.stream).map_err(Failed::final_)?;
    let auth = up
        .auth_headers(caller.passthrough.as_deref())
        .map_err(Failed::final_)?;
    let scrubber = Scrubber::for_attempt(up, caller, headers);

    let mut req = state
        .client
        .get(timeouts.connect)
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
        .header(REQUEST_ID_HEADER, &tracker.rec.request_id)
        .body(serde_json::to_vec(&upstream_body).unwrap_or_default());
    drop(upstream_body);
    for (name, value) in auth {
        req = req.header(name, value);
    }
    if up.dialect == Dialect::Anthropic {
        let version = headers
            .get("anthropic-version")
            .filter(|_| dialect == Dialect::Anthropic);
        req = req.header(
            "anthropic-version",
            version
                .cloned()
                .unwrap_or(HeaderValue::from_static(ANTHROPIC_VERSION)),
        );
        if dialect == Dialect::Anthropic
            && let Some(beta) = headers.get("anthropic-beta")
        {
            req = req.header("anthropic-beta", beta.clone());
        }
    }
    for h in &up.headers {
        req = req.header(h.name.as_str(), h.value.expose());
    }

    let first_byte = timeouts
        .first_byte
        .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
    let sent = tokio::time::timeout(first_byte, req.send()).await;
    let resp = match sent {
        Err(_) => {
            record_attempt(
                tracker,
                None,
                Some(format!("no response within {} ms", first_byte.as_millis())),
            );
            upstream_error_metric(state, up, "timeout");
            guard.finish(CallOutcome::Failure, started.elapsed());
            return Err(Failed {
                error: ApiError::new(
                    ErrorKind::Timeout,
                    format!(
                        "{} did not answer within {} ms",
                        up.name,
                        first_byte.as_millis()
                    ),
                ),
                next: true,
                retryable: true,
                retry_after: None,
            });
        }
        Ok(Err(e)) => {
            // Nothing came back (refused, reset, TLS failure): safe to try again, nothing of
            // an answer was produced.
            let what = if e.is_connect() { "connect" } else { "request" };
            let msg = scrubber.error_text(&format!("{what} error: {}", error_chain(&e)));
            record_attempt(tracker, None, Some(msg.clone()));
            upstream_error_metric(state, up, what);
            guard.finish(CallOutcome::Failure, started.elapsed());
            return Err(Failed {
                error: ApiError::new(ErrorKind::Upstream, format!("{}: {msg}", up.name)),
                next: true,
                retryable: true,
                retry_after: None,
            });
        }
        Ok(Ok(r)) => r,
    };
    let ttfb = started.elapsed();
    tracker.upstream_answered = true;
    let status = resp.status();
    if !status.is_success() {
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::retry::parse_retry_after(v, SystemTime::now()));
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let bytes = read_error_body(resp, 1 << 20, timeouts.idle.min(remaining))
            .await
            .unwrap_or_default();
        let message = scrubber.error_text(&upstream_error_message(&bytes));
        record_attempt(tracker, Some(status.as_u16()), Some(message.clone()));
        upstream_error_metric(
            state,
            up,
            if status.is_server_error() {
                "status_5xx"
            } else {
                "status_4xx"
            },
        );
        let outcome = if counts_against_target(status) {
            CallOutcome::Failure
        } else {
            CallOutcome::Ignored
        };
        guard.finish(outcome, ttfb);
        let mut e = ApiError::new(
            kind_for_status(status),
            format!(
                "upstream {} answered {}: {message}",
                up.name,
                status.as_u16()
            ),
        );
        if let Some(ra) = retry_after {
            // Rounded up: never tell the caller to come back before the upstream said.
            e = e.retry_after(ra.as_secs() + u64::from(ra.subsec_nanos() > 0));
        }
        let next = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        return Err(Failed {
            error: e,
            next,
            retryable: crate::retry::retryable(Some(status.as_u16()), false, false),
            retry_after,
        });
    }
    tracker.served_by(up);

    if info.stream {
        let mut events = UpstreamEvents::new(
            resp,
            dialect,
            up,
            caller_wants_usage,
            scrubber,
            timeouts,
            deadline,
        );
        let (first, ending) = events.prefetch().await;
        // Ended badly before the caller's response started: the attempt failed as a whole.
        let failure = match ending {
            Some(Ending::ErrorEvent(message)) => AnswerFailure::Error(message, "error_event"),
            Some(Ending::Broken(message, "timeout")) => AnswerFailure::Timeout(message),
            Some(Ending::Broken(message, kind)) => AnswerFailure::Broken(message, kind),
            ending => {
                record_attempt(tracker, Some(status.as_u16()), None);
                return Ok(Handled::Stream(super::stream::stream_response(
                    state, events, first, ending, dialect, guard, ttfb, tracker,
                )));
            }
        };
        return Err(answer_failed(
            state,
            up,
            guard,
            started,
            (tracker, &record_attempt),
            failure,
        ));
    }
    let read = read_answer(state, &up.name, resp, timeouts, deadline, &scrubber).await;
    let answer = read.and_then(|(bytes, permit)| {
        relayable(endpoint, dialect, up, bytes, &scrubber).map(|(out, s)| (out, s, permit))
    });
    let (out, summary, permit) = match answer {
        Ok(answer) => answer,
        Err(AnswerFailure::BufferFull(full)) => {
            // The gateway's own refusal: the guard is dropped, the breaker does not count it.
            drop(guard);
            record_attempt(tracker, Some(status.as_u16()), Some(full.to_string()));
            state.metrics.refused("answer_buffer_full");
            return Err(Failed::final_(
                ApiError::new(ErrorKind::Unavailable, full.to_string())
                    .code("answer_buffer_full")
                    .retry_after(1),
            ));
        }
        Err(failure) => {
            return Err(answer_failed(
                state,
                up,
                guard,
                started,
                (tracker, &record_attempt),
                failure,
            ));
        }
    };
    // A non-streamed call is as slow as its whole answer.
    guard.finish(CallOutcome::Success, started.elapsed());
    record_attempt(tracker, Some(status.as_u16()), None);
    tracker.rec.finish_reason = summary.finish_reason;
    tracker.rec.tool_usages = summary.tools;
    tracker.mark_first_token();
    tracker.finish(200, Outcome::Success, None, summary.usage);
    Ok(Handled::Done(buffered_response(out, permit)))
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
        AnswerFailure::Broken(
            format!("{} sent an invalid answer: {why}", up.name),
            "invalid_answer",
        )
    };
    let summary = match answer::check(endpoint, up.dialect, &bytes) {
        Ok(s) => s,
        Err(Fault::ErrorBody(message)) => {
            return Err(AnswerFailure::Error(
                scrubber.error_text(&message),
                "error_body",
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

/// Why an answer that came with a 2xx head failed, before anything reached the caller.
enum AnswerFailure {
    /// The idle or total timeout passed while it was read.
    Timeout(String),
    /// Cut, over-long, or not an answer of the dialect (message, metric kind).
    Broken(String, &'static str),
    /// An error body or error event (its scrubbed message, metric kind).
    Error(String, &'static str),
    /// The gateway had no room to buffer it.
    BufferFull(crate::limits::BufferFull),
}

type RecordAttempt<'a> = dyn Fn(&mut Tracker, Option<u16>, Option<String>) + 'a;

/// An answer that failed after its 2xx head: an upstream failure like a 5xx (counted by the
/// breaker; the next target may serve the request, since nothing reached the caller). It is
/// not retried on the same target when the upstream said it was an error.
fn answer_failed(
    state: &AppState,
    up: &Upstream,
    guard: CallGuard,
    started: Instant,
    (tracker, record_attempt): (&mut Tracker, &RecordAttempt<'_>),
    failure: AnswerFailure,
) -> Failed {
    guard.finish(CallOutcome::Failure, started.elapsed());
    let (error, kind, retryable) = match failure {
        AnswerFailure::Timeout(m) => (ApiError::new(ErrorKind::Timeout, m), "timeout", true),
        AnswerFailure::Broken(m, kind) => (ApiError::new(ErrorKind::Upstream, m), kind, true),
        AnswerFailure::Error(m, kind) => (
            ApiError::new(
                ErrorKind::Upstream,
                format!("upstream {} answered with an error: {m}", up.name),
            ),
            kind,
            false,
        ),
        AnswerFailure::BufferFull(full) => (
            ApiError::new(ErrorKind::Unavailable, full.to_string()),
            "answer_buffer_full",
            false,
        ),
    };
    record_attempt(tracker, Some(200), Some(error.message.clone()));
    upstream_error_metric(state, up, kind);
    Failed {
        error,
        next: true,
        retryable,
        retry_after: None,
    }
}

/// Reads a non-streamed answer whole within the budget of buffered answers, the idle timeout
/// between chunks and the request's deadline; scrubbed of the attempt's credentials.
async fn read_answer(
    state: &AppState,
    name: &str,
    resp: reqwest::Response,
    timeouts: Timeouts,
    deadline: tokio::time::Instant,
    scrubber: &Scrubber,
) -> Result<(Bytes, BufferPermit), AnswerFailure> {
    let limit = state.settings.max_response_bytes;
    let declared = resp.content_length().and_then(|n| usize::try_from(n).ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AnswerFailure::Broken(
            format!("the answer is larger than {limit} bytes"),
            "too_large",
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
                return Err(AnswerFailure::Timeout(format!(
                    "{name} sent nothing of its answer for {} ms",
                    wait.as_millis()
                )));
            }
            Err(_) => {
                return Err(AnswerFailure::Timeout(format!(
                    "{name} did not finish its answer within the request's total timeout ({} ms)",
                    timeouts.total.as_millis()
                )));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(AnswerFailure::Broken(
                    scrubber
                        .error_text(&format!("{name} broke off its answer: {}", error_chain(&e))),
                    "body_cut",
                ));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        let len = buf.len() + chunk.len();
        if len > limit {
            return Err(AnswerFailure::Broken(
                format!("the answer is larger than {limit} bytes"),
                "too_large",
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
            translate::anthropic_to_openai_chat(body, &up.model).map_err(translate_error)?
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

fn kind_for_status(s: StatusCode) -> ErrorKind {
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
fn upstream_error_message(bytes: &[u8]) -> String {
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
async fn read_error_body(
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

fn upstream_error_metric(state: &AppState, up: &Upstream, kind: &str) {
    upstream_error_metric_by_name(state, &up.name, kind);
}

pub(crate) fn upstream_error_metric_by_name(state: &AppState, name: &str, kind: &str) {
    state
        .metrics
        .upstream_errors
        .get_or_create(&crate::metrics::UpstreamErrorLabels {
            gen_ai_provider_name: name.to_owned(),
            kind: kind.to_owned(),
        })
        .inc();
}
