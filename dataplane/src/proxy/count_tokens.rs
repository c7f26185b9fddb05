//! `POST /v1/messages/count_tokens` (Anthropic's token counting: a Messages body without
//! `max_tokens`, answered `{"input_tokens": N}`).
//!
//! The request goes the way of `/v1/messages` up to the upstream call: the same body reader
//! (size limit, deadline), classification (without `max_tokens`), identification, routing
//! (RouterPolicies, MuxRules, declared models), request limits, the workspace's custom
//! instructions and guardrails (what is counted is what the model would see; a blocked request
//! is refused). Then the first target of the route that resolves to an upstream answers:
//!
//! - an Anthropic provider counts itself: the request goes to its `/v1/messages/count_tokens`
//!   with its credential, through the upstream client and egress policy of every call, with the
//!   caller's `anthropic-version` and `anthropic-beta`, and its answer comes back scrubbed of
//!   credentials. Only the fields token counting takes are sent (a Messages body with
//!   `max_tokens`, `metadata`, `stream` … still counts). An answer that is not a count, a 5xx,
//!   a 429 or no answer at all falls back to the local estimate; a 4xx is the caller's (relayed
//!   in Anthropic's error shape);
//! - any other target (OpenAI dialect: OpenAI, vLLM, Ollama, backends and groups) gets the
//!   local estimate of [`crate::count_tokens`] for the target's model.
//!
//! The response says which in `x-switchyard-token-count`: `upstream`, or
//! `estimate; encoding=o200k_base` (or `cl100k_base`). No breaker, retry or backend slot is
//! involved: a count generates nothing, and its failures say nothing about generation.
//!
//! The call is recorded as an interception under `/v1/messages/count_tokens` (client,
//! initiator, session, route and provider as for messages) with no usage and no cost: it
//! charges no token limit and adds nothing to usage totals or the token metrics (it is one
//! request in the request counters).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use switchyard_crds::snapshot::{Snapshot, TargetKind, TargetSnapshot};
use switchyard_routing::route::{self, Route};
use switchyard_routing::table::RoutingTable;
use switchyard_routing::{Dialect, Endpoint};

use super::Summary;
use super::attempt::{kind_for_status, read_error_body, upstream_error_message};
use super::scrub::{Scrubber, error_chain};
use super::tracker::Tracker;
use super::{REQUEST_ID_HEADER, ROUTE_HEADER};
use crate::count_tokens::{self, Estimate};
use crate::errors::{ApiError, ErrorKind};
use crate::identity::{self, Caller};
use crate::state::AppState;
use crate::upstream::{ANTHROPIC_VERSION, Timeouts, Upstream};

/// Response header saying how the count was made.
pub const TOKEN_COUNT_HEADER: &str = "x-switchyard-token-count";

/// Fields of a count-tokens request an Anthropic upstream takes (the Messages fields that shape
/// the input: `messages`, `model`, `system`, `tools`, `tool_choice`, `thinking`,
/// `cache_control`, `output_config`; `mcp_servers` and `context_management` with their betas),
/// after the SDK's `MessageCountTokensParams` (anthropic-sdk-python,
/// `types/message_count_tokens_params.py` and `types/beta/`). Other fields are refused there.
const FORWARDED_FIELDS: [&str; 10] = [
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "cache_control",
    "output_config",
    "mcp_servers",
    "context_management",
];

/// Largest count answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest an upstream count may take (its target's own timeouts, when shorter, apply).
const MAX_UPSTREAM_WAIT: Duration = Duration::from_secs(60);

/// Handles one `POST /v1/messages/count_tokens`.
pub async fn handle(state: Arc<AppState>, headers: HeaderMap, body: Body) -> Response {
    let request_id = super::request_id(&headers);
    let table = state.table();
    let mut tracker = Tracker::new(
        state.clone(),
        Endpoint::Messages,
        &headers,
        &request_id,
        table.version(),
    );
    tracker.token_count();
    let mut response = match count(&state, &table, &headers, body, &mut tracker).await {
        Ok(r) => r,
        Err(e) => {
            tracker.failed(&e);
            e.into_response_for(Dialect::Anthropic)
        }
    };
    if let Some(v) = tracker
        .route_header()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        response.headers_mut().insert(ROUTE_HEADER, v);
    }
    super::with_request_id(response, &request_id)
}

async fn count(
    state: &Arc<AppState>,
    table: &Arc<RoutingTable>,
    headers: &HeaderMap,
    body: Body,
    tracker: &mut Tracker,
) -> Result<Response, ApiError> {
    let raw = super::read_body(
        body,
        state.settings.max_body_bytes,
        state.settings.body_timeout,
    )
    .await?;
    let mut body: Value = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    tracker.body_read(raw.len());
    drop(raw);
    let info = crate::classify::classify_count_tokens(headers, &body)?;
    tracker.classified(&info);
    if !state.is_ready() {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "no routing snapshot loaded yet",
        ));
    }
    let (caller, workspace) =
        identity::identify(table, headers, &info, state.settings.require_client_key)?;
    tracker.identified(&caller, workspace);
    let routes = route::candidates(table, workspace, &info)?;
    // A count is a request for the request limits; it spends no tokens (the tracker charges
    // none).
    match state.limiter.admit(
        &workspace.key,
        Some(caller.limit_key()),
        &workspace.limits,
        Instant::now(),
    ) {
        Ok(admission) => tracker.admitted(admission),
        Err(exceeded) => {
            state.metrics.refused(exceeded.limit.metric_label());
            return Err(ApiError::from(exceeded));
        }
    }
    if let Some(instructions) = &workspace.custom_instructions {
        super::add_instructions(&mut body, Dialect::Anthropic, instructions);
    }
    super::run_guardrails(state, workspace, tracker, Endpoint::Messages, &mut body)?;

    let Some((route, target, up)) = first_usable(&table.snapshot, &routes) else {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "no target of the route could take the request",
        ));
    };
    tracker.routed(route);
    tracker.trying(
        &up,
        format!(
            "{}; target={}/{}; model={}",
            route.source,
            target.kind.as_str(),
            switchyard_routing::table::name_of(&target.key),
            up.model
        ),
    );
    let body = Arc::new(body);
    if up.dialect == Dialect::Anthropic {
        match forward(state, headers, &body, &up, &caller, tracker).await {
            Forwarded::Counted(resp) => return Ok(resp),
            Forwarded::Refused(e) => return Err(e),
            // Falls back to the estimate.
            Forwarded::Failed => {}
        }
    }
    let model = up.model.clone();
    let estimate = tokio::task::spawn_blocking(move || count_tokens::estimate(&body, &model))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("token count failed: {e}")))?
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    tracker.answered(Summary::default());
    Ok(estimated(estimate))
}

/// The first target of the routes that resolves to an upstream: a Provider with its
/// credential, a Backend, or the first member of an AffinityGroup that serves the model (a
/// group's members are all Backends, of the OpenAI dialect: which one is picked does not change
/// an estimate, so the balancer is not asked).
fn first_usable<'r>(
    snapshot: &Snapshot,
    routes: &'r [Route],
) -> Option<(&'r Route, &'r TargetSnapshot, Upstream)> {
    routes.iter().find_map(|route| {
        route.targets.iter().find_map(|target| {
            let model = target.model.as_deref().unwrap_or_default();
            let up = match target.kind {
                TargetKind::Provider => Upstream::provider(snapshot, target, model),
                TargetKind::Backend => Upstream::backend(snapshot, &target.key, target, model),
                TargetKind::AffinityGroup => snapshot.affinity_group(&target.key).and_then(|g| {
                    g.members
                        .iter()
                        .filter(|m| m.models.iter().any(|n| n == model))
                        .find_map(|m| Upstream::backend(snapshot, &m.backend, target, model))
                }),
            }?;
            Some((route, target, up))
        })
    })
}

/// What became of a count forwarded to an Anthropic upstream.
enum Forwarded {
    /// Its count, for the caller.
    Counted(Response),
    /// It refused the request (4xx): the caller's to fix.
    Refused(ApiError),
    /// It failed (no answer, 429, 5xx, not a count): estimate instead.
    Failed,
}

async fn forward(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: &Value,
    up: &Upstream,
    caller: &Caller,
    tracker: &mut Tracker,
) -> Forwarded {
    let started = Instant::now();
    let url = format!("{}/v1/messages/count_tokens", up.base.trim_end_matches('/'));
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
            tracker.attempt_failed(up, None, e, started.elapsed());
            return Forwarded::Failed;
        }
    };
    let auth = match up.auth_headers(caller.passthrough.as_deref()) {
        Ok(a) => a,
        Err(e) => return Forwarded::Refused(e),
    };
    let scrubber = Scrubber::for_attempt(up, caller, headers);
    let timeouts = Timeouts::resolve(&up.timeouts, None);
    let wait = timeouts.first_byte.min(MAX_UPSTREAM_WAIT);
    let mut req = state
        .client
        .get(timeouts.connect)
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header(REQUEST_ID_HEADER, tracker.request_id())
        .header(
            "anthropic-version",
            headers
                .get("anthropic-version")
                .cloned()
                .unwrap_or(HeaderValue::from_static(ANTHROPIC_VERSION)),
        )
        .body(upstream_body(body, &up.model).to_string());
    if let Some(beta) = headers.get("anthropic-beta") {
        req = req.header("anthropic-beta", beta.clone());
    }
    for (name, value) in auth {
        req = req.header(name, value);
    }
    for h in &up.headers {
        req = req.header(h.name.as_str(), h.value.expose());
    }
    let resp = match tokio::time::timeout(wait, req.send()).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            let msg = scrubber.error_text(&format!("request error: {}", error_chain(&e)));
            tracker.attempt_failed(up, None, msg, started.elapsed());
            return Forwarded::Failed;
        }
        Err(_) => {
            let msg = format!("no response within {} ms", wait.as_millis());
            tracker.attempt_failed(up, None, msg, started.elapsed());
            return Forwarded::Failed;
        }
    };
    tracker.upstream_responded();
    let status = resp.status();
    let left = wait
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    let bytes = match read_error_body(resp, MAX_ANSWER_BYTES, timeouts.idle.min(left)).await {
        Ok(b) => scrubber.bytes(b),
        Err(e) => {
            let msg = scrubber.error_text(&e);
            tracker.attempt_failed(up, Some(status.as_u16()), msg, started.elapsed());
            return Forwarded::Failed;
        }
    };
    if !status.is_success() {
        let message = scrubber.error_text(&upstream_error_message(&bytes));
        tracker.attempt_failed(
            up,
            Some(status.as_u16()),
            message.clone(),
            started.elapsed(),
        );
        if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            return Forwarded::Refused(ApiError::new(
                kind_for_status(status),
                format!(
                    "upstream {} answered {}: {message}",
                    up.name,
                    status.as_u16()
                ),
            ));
        }
        return Forwarded::Failed;
    }
    let counted = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(|v| v.get("input_tokens").and_then(Value::as_u64).is_some());
    let Some(answer) = counted else {
        tracker.attempt_failed(
            up,
            Some(status.as_u16()),
            format!("{} sent an answer without `input_tokens`", up.name),
            started.elapsed(),
        );
        return Forwarded::Failed;
    };
    tracker.attempt_succeeded(up, status.as_u16(), started.elapsed());
    tracker.served_by(up);
    tracker.answered(Summary::default());
    Forwarded::Counted(json_response(&answer, "upstream"))
}

/// The body sent upstream: the fields token counting takes, with the target's model.
fn upstream_body(body: &Value, model: &str) -> Value {
    let mut out: Map<String, Value> = body
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| FORWARDED_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert("model".into(), Value::String(model.to_owned()));
    Value::Object(out)
}

fn estimated(e: Estimate) -> Response {
    json_response(
        &json!({"input_tokens": e.input_tokens}),
        &format!("estimate; encoding={}", e.encoding.as_str()),
    )
}

fn json_response(v: &Value, how: &str) -> Response {
    let mut r = (StatusCode::OK, v.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(how) {
        h.insert(TOKEN_COUNT_HEADER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_fields_token_counting_takes_go_upstream() {
        let body = json!({
            "model": "asked", "max_tokens": 10, "stream": true, "metadata": {"user_id": "u"},
            "tags": ["a"], "temperature": 0.5,
            "messages": [{"role": "user", "content": "hi"}],
            "system": "s", "tools": [], "thinking": {"type": "enabled", "budget_tokens": 1024}
        });
        let out = upstream_body(&body, "claude-x");
        let mut keys: Vec<&str> = out
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["messages", "model", "system", "thinking", "tools"]);
        assert_eq!(out["model"], "claude-x");
    }

    #[test]
    fn the_estimate_says_its_encoding() {
        let r = estimated(Estimate {
            input_tokens: 7,
            encoding: count_tokens::Encoding::O200kBase,
        });
        assert_eq!(
            r.headers()[TOKEN_COUNT_HEADER],
            "estimate; encoding=o200k_base"
        );
    }
}
