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

use super::scrub::{error_chain, scrub, secrets_of};
use super::tracker::Tracker;
use super::{Handled, REQUEST_ID_HEADER};
use crate::balance::InFlight;
use crate::breaker::{CallOutcome, Permit};
use crate::classify::{self, Endpoint, RequestInfo};
use crate::errors::{ApiError, Dialect, ErrorKind};
use crate::identity::Caller;
use crate::limits::ConcurrencyPermit;
use crate::record::{Attempt, Outcome, ToolUsage};
use crate::state::AppState;
use crate::translate;
use crate::upstream::{ANTHROPIC_VERSION, Timeouts, Upstream};
use crate::usage::Usage;

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
    let secrets: Vec<String> = secrets_of(up, caller);

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
            let msg = scrub(&format!("{what} error: {}", error_chain(&e)), &secrets);
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
        let bytes = read_limited(resp, 1 << 20, timeouts.idle.min(remaining))
            .await
            .unwrap_or_default();
        let message = scrub(&upstream_error_message(&bytes), &secrets);
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
    record_attempt(tracker, Some(status.as_u16()), None);
    tracker.served_by(up);

    if info.stream {
        return Ok(Handled::Stream(super::stream::stream_response(
            state,
            resp,
            dialect,
            up,
            caller_wants_usage,
            timeouts,
            deadline,
            secrets,
            guard,
            ttfb,
            tracker,
        )));
    }
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let bytes = match read_limited(resp, state.settings.max_response_bytes, remaining).await {
        Ok(b) => b,
        Err(e) => {
            guard.finish(CallOutcome::Failure, started.elapsed());
            return Err(Failed::final_(ApiError::new(
                ErrorKind::Upstream,
                format!("{}: {}", up.name, scrub(&e, &secrets)),
            )));
        }
    };
    let v: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            guard.finish(CallOutcome::Failure, started.elapsed());
            return Err(Failed::final_(ApiError::new(
                ErrorKind::Upstream,
                format!("{} sent a response that is not JSON: {e}", up.name),
            )));
        }
    };
    // A non-streamed call is as slow as its whole answer.
    guard.finish(CallOutcome::Success, started.elapsed());
    let usage = match up.dialect {
        Dialect::OpenAi => v.get("usage").and_then(Usage::from_openai),
        Dialect::Anthropic => v.get("usage").and_then(Usage::from_anthropic),
    };
    let (finish, tools) = finish_and_tools(&v, up.dialect);
    tracker.rec.finish_reason = finish;
    tracker.rec.tool_usages = tools;
    let out = match (dialect, up.dialect) {
        (a, b) if a == b => bytes,
        (Dialect::OpenAi, Dialect::Anthropic) => {
            Bytes::from(translate::anthropic_response_to_openai(&v, &up.model).to_string())
        }
        _ => Bytes::from(translate::openai_response_to_anthropic(&v, &up.model).to_string()),
    };
    tracker.mark_first_token();
    tracker.finish(200, Outcome::Success, None, usage);
    let mut resp = (StatusCode::OK, out).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(Handled::Done(resp))
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

fn finish_and_tools(v: &Value, dialect: Dialect) -> (Option<String>, Vec<ToolUsage>) {
    match dialect {
        Dialect::OpenAi => {
            let choice = v.get("choices").and_then(|c| c.get(0));
            let finish = choice
                .and_then(|c| c.get("finish_reason"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let tools = choice
                .and_then(|c| c.pointer("/message/tool_calls"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some(ToolUsage {
                        id: t.get("id")?.as_str()?.to_owned(),
                        name: t.pointer("/function/name")?.as_str()?.to_owned(),
                    })
                })
                .collect();
            (finish, tools)
        }
        Dialect::Anthropic => {
            let finish = v
                .get("stop_reason")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let tools = v
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
                .filter_map(|b| {
                    Some(ToolUsage {
                        id: b.get("id")?.as_str()?.to_owned(),
                        name: b.get("name")?.as_str()?.to_owned(),
                    })
                })
                .collect();
            (finish, tools)
        }
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

async fn read_limited(
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
