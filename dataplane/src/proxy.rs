//! The request pipeline shared by every generating endpoint: parse, classify, identify,
//! route, transform (custom instructions, guardrails, dialect), call the upstream (falling back
//! along the route before the first byte reaches the caller), relay, and record exactly one
//! interception whatever happens.

use std::sync::Arc;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use regex::Regex;
use serde_json::{Value, json};
use switchyard_crds::snapshot::{TargetKind, WorkspaceSnapshot};
use switchyard_crds::workspace::GuardrailAction;

use crate::classify::{self, Endpoint, RequestInfo};
use crate::errors::{ApiError, Dialect, ErrorKind};
use crate::guardrails;
use crate::identity::{self, Caller};
use crate::record::{Attempt, Cost, Interception, Outcome, RouteRecord, ToolUsage};
use crate::relay::Relay;
use crate::route::{self, Route};
use crate::sse::{SseEvent, SseParser};
use crate::state::AppState;
use crate::table::RoutingTable;
use crate::translate;
use crate::upstream::{ANTHROPIC_VERSION, Timeouts, Upstream};
use crate::usage::Usage;

/// Response header naming the route taken.
pub const ROUTE_HEADER: &str = "x-switchyard-route";
/// Request id header (propagated or generated).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Handles one request to a generating endpoint.
pub async fn handle(
    state: Arc<AppState>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let dialect = endpoint.dialect();
    let request_id = request_id(&headers);
    let table = state.table();
    let mut tracker = Tracker::new(
        state.clone(),
        endpoint,
        &headers,
        &request_id,
        table.version(),
    );
    let mut response = match pipeline(&state, &table, endpoint, &headers, body, &mut tracker).await
    {
        Ok(Handled::Done(resp)) => resp,
        Ok(Handled::Stream(resp)) => return with_request_id(resp, &request_id),
        Err(e) => {
            let outcome = match e.kind {
                ErrorKind::Internal => Outcome::GatewayError,
                ErrorKind::Upstream | ErrorKind::Timeout => Outcome::UpstreamError,
                _ if tracker.upstream_answered => Outcome::UpstreamError,
                _ => Outcome::Rejected,
            };
            tracker.finish(
                e.kind.status().as_u16(),
                outcome,
                Some(e.message.clone()),
                None,
            );
            e.into_response_for(dialect)
        }
    };
    if let Some(v) = tracker
        .route_header
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        response.headers_mut().insert(ROUTE_HEADER, v);
    }
    with_request_id(response, &request_id)
}

enum Handled {
    /// A complete response; the tracker was finished.
    Done(Response),
    /// A streaming response; the tracker travels inside the body.
    Stream(Response),
}

fn with_request_id(mut r: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        r.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    r
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// Reads the body with the size limit, answering 413 in the caller's dialect when over.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::new(
                ErrorKind::TooLarge,
                format!("request body is larger than {limit} bytes"),
            ))
        }
        Err(e) => Err(ApiError::invalid(format!(
            "could not read the request body: {e}"
        ))),
    }
}

async fn pipeline(
    state: &Arc<AppState>,
    table: &Arc<RoutingTable>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    tracker: &mut Tracker,
) -> Result<Handled, ApiError> {
    let dialect = endpoint.dialect();
    let raw = read_body(body, state.settings.max_body_bytes).await?;
    let mut body: Value = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    tracker.input_estimate = (raw.len() / 4) as u64;
    drop(raw);
    let info = classify::classify(endpoint, headers, &body)?;
    tracker.note_request(&info);
    if !state.is_ready() {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "no routing snapshot loaded yet",
        ));
    }
    let (caller, workspace) =
        identity::identify(table, headers, &info, state.settings.require_client_key)?;
    tracker.note_caller(&caller, workspace);
    let route = route::route(table, workspace, &info)?;
    tracker.rec.route = Some(RouteRecord {
        source: route.source.kind().to_owned(),
        rule: route.source.key().map(str::to_owned),
        target: route
            .targets
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
    });

    // Transform, in the caller's dialect.
    if let Some(instructions) = &workspace.custom_instructions {
        add_instructions(&mut body, dialect, instructions);
    }
    let policy = guardrails::Policy {
        secrets: workspace.guardrail_secrets,
        pii: workspace.guardrail_pii,
    };
    let outcome = guardrails::apply(&state.scanner, &policy, &mut body);
    for a in &outcome.alerts {
        state
            .metrics
            .alerts
            .get_or_create(&crate::metrics::AlertLabels {
                category: category_name(&a.category).to_owned(),
                action: a.action.as_str().to_owned(),
            })
            .inc();
    }
    tracker.rec.alerts = outcome.alerts.clone();
    // The workspace's guardrails have now seen the prompt (see below for the recorded copy).
    tracker.prompt_redaction = None;
    if !outcome.alerts.is_empty() {
        // The record store never keeps a finding, whatever the action: the recorded prompt is
        // redacted even when the request went upstream unchanged (`alert`).
        let secrets = policy.secrets != GuardrailAction::Off;
        let pii = policy.pii != GuardrailAction::Off;
        if let Some(p) = tracker.rec.user_prompt.take() {
            let findings = state.scanner.scan(&p, secrets, pii);
            tracker.rec.user_prompt = Some(guardrails::redact(&p, &findings));
        }
    }
    if outcome.blocked {
        let kinds: Vec<&str> = outcome.alerts.iter().map(|a| a.kind.as_str()).collect();
        return Err(ApiError::invalid(format!(
            "request blocked by the workspace guardrails ({})",
            kinds.join(", ")
        ))
        .code("guardrail_blocked"));
    }

    attempt_route(
        state, table, endpoint, headers, &body, &info, &caller, &route, tracker,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn attempt_route(
    state: &Arc<AppState>,
    table: &Arc<RoutingTable>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &Value,
    info: &RequestInfo,
    caller: &Caller,
    route: &Route,
    tracker: &mut Tracker,
) -> Result<Handled, ApiError> {
    let snapshot = &table.snapshot;
    let policy_timeouts = match &route.source {
        route::RouteSource::Policy(k) => table
            .policies
            .iter()
            .find(|p| &p.snap.key == k)
            .map(|p| &p.snap.timeouts),
        _ => None,
    };
    let mut last_error: Option<ApiError> = None;
    let mut tried_backends: Vec<String> = Vec::new();
    for target in &route.targets {
        let model = target.model.clone().unwrap_or_else(|| info.model.clone());
        let upstream = match target.kind {
            TargetKind::Provider => Upstream::provider(snapshot, target, &model),
            TargetKind::Backend => Upstream::backend(snapshot, &target.key, target, &model),
            TargetKind::AffinityGroup => snapshot.affinity_group(&target.key).and_then(|g| {
                let session = headers
                    .get(g.session_header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .or(info.session_id.as_deref());
                let b = state
                    .balancer
                    .pick(snapshot, g, &model, session, &tried_backends)?;
                Upstream::backend(snapshot, &b, target, &model)
            }),
        };
        let Some(upstream) = upstream else {
            tracker.rec.attempts.push(Attempt {
                target: target.to_string(),
                backend: None,
                model: model.clone(),
                status: None,
                error: Some("no usable member serves the model".into()),
                latency_ms: 0,
            });
            continue;
        };
        if let Some(b) = &upstream.backend {
            tried_backends.push(b.clone());
        }
        tracker.route_header = Some(format!(
            "{}; target={}; model={}",
            route.source,
            target_name(target),
            model
        ));
        // The record names the target that answered, or else the last one tried.
        if let Some(r) = &mut tracker.rec.route {
            r.target.clone_from(&upstream.target_label);
        }
        let timeouts = Timeouts::resolve(&upstream.timeouts, policy_timeouts);
        match attempt(
            state, endpoint, headers, body, info, caller, &upstream, timeouts, tracker,
        )
        .await
        {
            Ok(handled) => return Ok(handled),
            Err(AttemptError::Final(e)) => return Err(e),
            Err(AttemptError::TryNext(e)) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            "no target of the route could take the request",
        )
    }))
}

fn target_name(t: &switchyard_crds::snapshot::TargetSnapshot) -> String {
    format!("{}/{}", t.kind.as_str(), crate::table::name_of(&t.key))
}

enum AttemptError {
    /// Failed before the first byte in a way another target may fix (connect error, timeout,
    /// 429, 5xx).
    TryNext(ApiError),
    /// Answer the caller with this (e.g. the upstream rejected the request as invalid).
    Final(ApiError),
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &Value,
    info: &RequestInfo,
    caller: &Caller,
    up: &Upstream,
    timeouts: Timeouts,
    tracker: &mut Tracker,
) -> Result<Handled, AttemptError> {
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
    let url = up.url(endpoint).map_err(AttemptError::TryNext)?;
    // Egress policy before any traffic (IP-literal hosts never reach the client's resolver).
    if let Err(e) = reqwest::Url::parse(&url)
        .map_err(|e| e.to_string())
        .and_then(|u| {
            state
                .settings
                .egress
                .check_url(&u)
                .map_err(|e| e.to_string())
        })
    {
        record_attempt(tracker, None, Some(e.clone()));
        return Err(AttemptError::TryNext(ApiError::new(
            ErrorKind::Upstream,
            format!("{}: {e}", up.name),
        )));
    }
    let (upstream_body, caller_wants_usage) =
        upstream_body(body, dialect, up, info.stream).map_err(AttemptError::Final)?;
    let auth = up
        .auth_headers(caller.passthrough.as_deref())
        .map_err(AttemptError::Final)?;
    let secrets: Vec<String> = secrets_of(up, caller);

    let mut req = state
        .client
        .get(timeouts.connect)
        .post(&url)
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
    // Counted until the response is complete: for a stream, until its last byte (the guard
    // travels inside the body), so least_outstanding sees long streams as outstanding.
    let in_flight = up.backend.as_deref().map(|b| state.balancer.start(b));

    let sent = tokio::time::timeout(timeouts.first_byte, req.send()).await;
    let resp = match sent {
        Err(_) => {
            record_attempt(
                tracker,
                None,
                Some(format!("no response within {:?}", timeouts.first_byte)),
            );
            upstream_error_metric(state, up, "timeout");
            return Err(AttemptError::TryNext(ApiError::new(
                ErrorKind::Timeout,
                format!(
                    "{} did not answer within {} ms",
                    up.name,
                    timeouts.first_byte.as_millis()
                ),
            )));
        }
        Ok(Err(e)) => {
            let what = if e.is_connect() { "connect" } else { "request" };
            let msg = scrub(&format!("{what} error: {}", error_chain(&e)), &secrets);
            record_attempt(tracker, None, Some(msg.clone()));
            upstream_error_metric(state, up, what);
            return Err(AttemptError::TryNext(ApiError::new(
                ErrorKind::Upstream,
                format!("{}: {msg}", up.name),
            )));
        }
        Ok(Ok(r)) => r,
    };
    tracker.upstream_answered = true;
    let status = resp.status();
    if !status.is_success() {
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = read_limited(resp, 1 << 20, timeouts.total)
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
        let mut e = ApiError::new(
            kind_for_status(status),
            format!(
                "upstream {} answered {}: {message}",
                up.name,
                status.as_u16()
            ),
        );
        if let Some(s) = retry_after {
            e = e.retry_after(s);
        }
        return Err(
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                AttemptError::TryNext(e)
            } else {
                AttemptError::Final(e)
            },
        );
    }
    record_attempt(tracker, Some(status.as_u16()), None);
    tracker.served_by(up);

    if info.stream {
        return Ok(Handled::Stream(stream_response(
            state,
            resp,
            dialect,
            up,
            caller_wants_usage,
            timeouts,
            secrets,
            in_flight,
            tracker,
        )));
    }
    let bytes = read_limited(resp, state.settings.max_response_bytes, timeouts.total)
        .await
        .map_err(|e| {
            AttemptError::Final(ApiError::new(
                ErrorKind::Upstream,
                format!("{}: {}", up.name, scrub(&e, &secrets)),
            ))
        })?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        AttemptError::Final(ApiError::new(
            ErrorKind::Upstream,
            format!("{} sent a response that is not JSON: {e}", up.name),
        ))
    })?;
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

#[allow(clippy::too_many_arguments)]
fn stream_response(
    state: &Arc<AppState>,
    resp: reqwest::Response,
    dialect: Dialect,
    up: &Upstream,
    caller_wants_usage: bool,
    timeouts: Timeouts,
    secrets: Vec<String>,
    in_flight: Option<crate::balance::InFlight>,
    tracker: &mut Tracker,
) -> Response {
    let mut tracker = tracker.take();
    let mut relay = Relay::new(dialect, up.dialect, &up.model, caller_wants_usage);
    let name = up.name.clone();
    let state = state.clone();
    let provider = up.name.clone();
    let deadline = tokio::time::Instant::now() + timeouts.total;
    let route_header = tracker.route_header.clone();
    let body = async_stream::stream! {
        let _in_flight = in_flight;
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

/// An upstream's in-stream error event (Anthropic `event: error`, OpenAI-dialect
/// `data: {"error": …}`) with credentials scrubbed from its text: error events are relayed to
/// the caller (translated or not) and recorded, and upstreams like to quote the key they were
/// given. Other events pass untouched.
fn scrub_error_event(ev: SseEvent, secrets: &[String]) -> SseEvent {
    let is_error = ev.event.as_deref() == Some("error")
        || (ev.data.contains("\"error\"")
            && serde_json::from_str::<Value>(&ev.data)
                .is_ok_and(|v| v.get("error").is_some_and(|e| !e.is_null())));
    if !is_error {
        return ev;
    }
    let data = scrub(&ev.data, secrets);
    SseEvent { data, ..ev }
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

fn add_instructions(body: &mut Value, dialect: Dialect, instructions: &str) {
    match dialect {
        Dialect::OpenAi => {
            if let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) {
                messages.insert(0, json!({"role": "system", "content": instructions}));
            }
        }
        Dialect::Anthropic => {
            let Some(o) = body.as_object_mut() else {
                return;
            };
            match o.get_mut("system") {
                Some(Value::String(s)) => *s = format!("{instructions}\n\n{s}"),
                Some(Value::Array(blocks)) => {
                    blocks.insert(0, json!({"type": "text", "text": instructions}))
                }
                _ => {
                    o.insert("system".into(), Value::String(instructions.to_owned()));
                }
            }
        }
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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Credentials involved in an attempt, to be scrubbed from any text that leaves the gateway.
fn secrets_of(up: &Upstream, caller: &Caller) -> Vec<String> {
    let mut out = Vec::new();
    if let crate::upstream::Credential::Key(k) = &up.credential {
        out.push(k.expose().to_owned());
    }
    if let Some(p) = &caller.passthrough {
        out.push(p.clone());
    }
    out.extend(up.headers.iter().map(|h| h.value.expose().to_owned()));
    out.retain(|s| s.len() >= 8);
    out
}

static MASKED_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"\b(sk|rk|pk|key|ak)[-_][A-Za-z0-9_\-]{0,12}\*{2,}[A-Za-z0-9_\-]{0,12}").ok()
});

/// Removes credentials (whole, or in the masked `sk-ab***yz` form upstreams print) from text.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "[REDACTED]");
        }
    }
    if let Some(re) = MASKED_KEY.as_ref() {
        out = re.replace_all(&out, "[REDACTED]").into_owned();
    }
    out
}

fn category_name(c: &guardrails::Category) -> &'static str {
    match c {
        guardrails::Category::Secrets => "secrets",
        guardrails::Category::Pii => "pii",
    }
}

fn upstream_error_metric(state: &AppState, up: &Upstream, kind: &str) {
    upstream_error_metric_by_name(state, &up.name, kind);
}

fn upstream_error_metric_by_name(state: &AppState, name: &str, kind: &str) {
    state
        .metrics
        .upstream_errors
        .get_or_create(&crate::metrics::UpstreamErrorLabels {
            gen_ai_provider_name: name.to_owned(),
            kind: kind.to_owned(),
        })
        .inc();
}

/// Builds and ships the interception of one request; on drop without `finish` (the caller
/// went away) it records a cancelled interception with estimated usage.
pub(crate) struct Tracker {
    state: Arc<AppState>,
    pub(crate) rec: Interception,
    start: Instant,
    first_token: Option<Duration>,
    pub(crate) input_estimate: u64,
    pub(crate) content_bytes: usize,
    pub(crate) upstream_answered: bool,
    /// An upstream accepted the request (2xx): from here on tokens are spent.
    pub(crate) generating: bool,
    /// The usage reported so far is not final (the stream broke before its end).
    pub(crate) usage_incomplete: bool,
    /// Categories (secrets, PII) still to redact from the recorded prompt at `finish`, for a
    /// request refused before the workspace's guardrails ran; `None` once they ran.
    pub(crate) prompt_redaction: Option<(bool, bool)>,
    pub(crate) route_header: Option<String>,
    pricing: Option<switchyard_crds::common::ModelPricing>,
    model_declared: bool,
    done: bool,
}

impl Tracker {
    fn new(
        state: Arc<AppState>,
        endpoint: Endpoint,
        headers: &HeaderMap,
        request_id: &str,
        version: &str,
    ) -> Self {
        state.metrics.in_flight.inc();
        let now = jiff::Timestamp::now();
        Self {
            state,
            rec: Interception {
                id: uuid::Uuid::now_v7(),
                request_id: request_id.to_owned(),
                started_at: now,
                ended_at: now,
                endpoint: endpoint.path().to_owned(),
                workspace: None,
                initiator: None,
                credential_kind: "none".into(),
                client: classify::client_name(headers),
                session_id: None,
                provider: None,
                provider_name: None,
                model_requested: String::new(),
                model_served: None,
                route: None,
                attempts: Vec::new(),
                status: 0,
                outcome: Outcome::Success,
                error: None,
                stream: false,
                latency_ms: 0,
                ttft_ms: None,
                usage: Usage::default(),
                usage_estimated: false,
                cost: Cost::default(),
                tool_usages: Vec::new(),
                finish_reason: None,
                user_prompt: None,
                tags: Default::default(),
                metadata: None,
                alerts: Vec::new(),
                snapshot_version: version.to_owned(),
                chain: None,
                thread_root_id: None,
            },
            start: Instant::now(),
            first_token: None,
            input_estimate: 0,
            content_bytes: 0,
            upstream_answered: false,
            generating: false,
            usage_incomplete: false,
            // Until the workspace is known, both: nothing detected is ever recorded.
            prompt_redaction: Some((true, true)),
            route_header: None,
            pricing: None,
            model_declared: false,
            done: false,
        }
    }

    /// Moves the tracker out (into a streaming body), leaving a finished husk behind.
    fn take(&mut self) -> Tracker {
        let husk = Tracker {
            state: self.state.clone(),
            rec: self.rec.clone(),
            start: self.start,
            first_token: None,
            input_estimate: 0,
            content_bytes: 0,
            upstream_answered: self.upstream_answered,
            generating: self.generating,
            usage_incomplete: false,
            prompt_redaction: None,
            route_header: self.route_header.clone(),
            pricing: None,
            model_declared: false,
            done: true,
        };
        std::mem::replace(self, husk)
    }

    fn note_request(&mut self, info: &RequestInfo) {
        self.rec.model_requested = info.model.clone();
        self.rec.stream = info.stream;
        self.rec.session_id = info.session_id.clone();
        self.rec.tags = info.tags.clone();
        self.rec.metadata = info.metadata.clone();
        self.rec.user_prompt = info.user_prompt.clone();
        self.rec.initiator = info.user.clone();
    }

    fn note_caller(&mut self, caller: &Caller, workspace: &WorkspaceSnapshot) {
        self.rec.workspace = Some(workspace.key.clone());
        self.prompt_redaction = Some((
            workspace.guardrail_secrets != GuardrailAction::Off,
            workspace.guardrail_pii != GuardrailAction::Off,
        ));
        self.rec.credential_kind = caller.credential_kind.as_str().to_owned();
        if caller.initiator.is_some() {
            self.rec.initiator = caller.initiator.clone();
        }
    }

    fn served_by(&mut self, up: &Upstream) {
        self.generating = true;
        self.rec.provider = Some(up.kind.to_owned());
        self.rec.provider_name = Some(up.name.clone());
        self.rec.model_served = Some(up.model.clone());
        if let Some(r) = &mut self.rec.route {
            r.target = up.target_label.clone();
        }
        self.pricing = up.pricing.clone();
        self.model_declared = up.declared;
    }

    fn mark_first_token(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.start.elapsed());
        }
    }

    /// Finalizes and ships the record (once).
    fn finish(
        &mut self,
        status: u16,
        outcome: Outcome,
        error: Option<String>,
        usage: Option<Usage>,
    ) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.start.elapsed();
        let rec = &mut self.rec;
        // Refused before the guardrails ran (no workspace, identity, route): the recorded
        // prompt still never keeps a finding.
        if let Some((secrets, pii)) = self.prompt_redaction.take()
            && (secrets || pii)
            && let Some(p) = rec.user_prompt.take()
        {
            let findings = self.state.scanner.scan(&p, secrets, pii);
            rec.user_prompt = Some(guardrails::redact(&p, &findings));
        }
        rec.ended_at = jiff::Timestamp::now();
        rec.status = status;
        rec.outcome = outcome;
        rec.error = error;
        rec.latency_ms = elapsed.as_millis() as u64;
        rec.ttft_ms = self.first_token.map(|d| d.as_millis() as u64);
        match usage {
            Some(mut u) if self.usage_incomplete => {
                // Reported before the break (Anthropic's message_start carries a placeholder
                // output count): keep what was reported, count at least what was relayed.
                u.output_tokens = u.output_tokens.max((self.content_bytes / 4) as u64);
                rec.usage = u;
                rec.usage_estimated = true;
            }
            Some(u) => rec.usage = u,
            // Only a call an upstream accepted spends tokens; a refused one (4xx, 5xx) costs
            // nothing.
            None if self.generating => {
                // The upstream never reported usage (the caller left, or the stream broke).
                rec.usage = Usage {
                    input_tokens: self.input_estimate,
                    output_tokens: (self.content_bytes / 4) as u64,
                    cache_read_input_tokens: 0,
                    cache_write_input_tokens: 0,
                };
                rec.usage_estimated = true;
            }
            None => {}
        }
        if let Some(p) = &self.pricing {
            rec.cost = Cost::of(&rec.usage, p);
        }
        let m = &self.state.metrics;
        m.in_flight.dec();
        let provider = rec.provider_name.clone().unwrap_or_else(|| "-".into());
        let model = match (&rec.model_served, self.model_declared) {
            (Some(m), true) => m.clone(),
            (Some(_), false) => "other".into(),
            (None, _) => "-".into(),
        };
        m.requests
            .get_or_create(&crate::metrics::RequestLabels {
                endpoint: rec.endpoint.clone(),
                gen_ai_provider_name: provider.clone(),
                gen_ai_request_model: model.clone(),
                outcome: serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            })
            .inc();
        let lat = crate::metrics::LatencyLabels {
            endpoint: rec.endpoint.clone(),
            gen_ai_provider_name: provider.clone(),
        };
        m.duration
            .get_or_create(&lat)
            .observe(elapsed.as_secs_f64());
        if let Some(t) = self.first_token {
            m.ttft.get_or_create(&lat).observe(t.as_secs_f64());
        }
        for (kind, n) in [
            ("input", rec.usage.input_tokens),
            ("output", rec.usage.output_tokens),
            ("cache_read", rec.usage.cache_read_input_tokens),
            ("cache_write", rec.usage.cache_write_input_tokens),
        ] {
            if n > 0 {
                m.tokens
                    .get_or_create(&crate::metrics::TokenLabels {
                        gen_ai_provider_name: provider.clone(),
                        gen_ai_request_model: model.clone(),
                        gen_ai_token_type: kind.to_owned(),
                    })
                    .inc_by(n);
            }
        }
        self.state.spool.record(rec.clone());
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.done {
            self.finish(
                499,
                Outcome::Cancelled,
                Some("the caller went away before the response was complete".into()),
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_whole_and_masked_keys() {
        let secrets = vec!["sk-live-0123456789abcdef".to_owned()];
        let text = "Incorrect API key provided: sk-live-0123456789abcdef; also sk-ab****yz and key_12***34";
        let s = scrub(text, &secrets);
        assert!(!s.contains("0123456789abcdef"), "{s}");
        assert!(!s.contains("sk-ab****yz"), "{s}");
        assert!(!s.contains("key_12***34"), "{s}");
    }

    #[test]
    fn error_events_are_scrubbed_and_other_events_untouched() {
        let secrets = vec!["sk-live-0123456789abcdef".to_owned()];
        let openai = SseEvent::data(
            r#"{"error":{"message":"bad key sk-live-0123456789abcdef","type":"server_error"}}"#,
        );
        assert!(
            !scrub_error_event(openai, &secrets)
                .data
                .contains("0123456789abcdef")
        );
        let anthropic = SseEvent::named(
            "error",
            r#"{"type":"error","error":{"message":"key sk-ab****yz"}}"#,
        );
        let out = scrub_error_event(anthropic, &secrets);
        assert_eq!(out.event.as_deref(), Some("error"));
        assert!(!out.data.contains("sk-ab****yz"), "{}", out.data);
        let content =
            SseEvent::data(r#"{"choices":[{"delta":{"content":"sk-live-0123456789abcdef"}}]}"#);
        assert_eq!(
            scrub_error_event(content.clone(), &secrets),
            content,
            "model output is not rewritten"
        );
    }

    #[test]
    fn custom_instructions_in_both_dialects() {
        let mut o = json!({"messages": [{"role": "user", "content": "hi"}]});
        add_instructions(&mut o, Dialect::OpenAi, "Be brief.");
        assert_eq!(
            o["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        let mut a = json!({"system": "You are X.", "messages": []});
        add_instructions(&mut a, Dialect::Anthropic, "Be brief.");
        assert_eq!(a["system"], "Be brief.\n\nYou are X.");
        let mut b = json!({"system": [{"type": "text", "text": "X", "cache_control": {"type": "ephemeral"}}], "messages": []});
        add_instructions(&mut b, Dialect::Anthropic, "Be brief.");
        assert_eq!(b["system"][0], json!({"type": "text", "text": "Be brief."}));
        assert_eq!(
            b["system"][1]["cache_control"],
            json!({"type": "ephemeral"}),
            "breakpoints kept"
        );
    }
}
