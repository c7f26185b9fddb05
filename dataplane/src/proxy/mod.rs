//! The request pipeline shared by every generating endpoint: parse, classify, identify, limit,
//! route, transform (custom instructions, guardrails, dialect), call the upstream (with circuit
//! breakers, retries and fallback before the first byte reaches the caller, see [`failover`]),
//! relay, and record exactly one interception whatever happens.

mod answer;
mod attempt;
mod call;
pub mod count_tokens;
mod failover;
pub(crate) mod internal;
pub mod responses;
mod scrub;
mod stream;
mod tracker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody as _};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use switchyard_crds::snapshot::WorkspaceSnapshot;
use switchyard_crds::workspace::GuardrailAction;

pub(crate) use answer::Summary;
pub use scrub::scrub;
use switchyard_routing::models::CHAIN_MODEL_PREFIX;
use switchyard_routing::route;
use switchyard_routing::table::RoutingTable;
use switchyard_routing::{Dialect, Endpoint, RequestInfo};
pub(crate) use tracker::Tracker;

use crate::classify;
use crate::errors::{ApiError, ErrorKind};
use crate::guardrails;
use crate::identity::{self, Caller};
use crate::state::AppState;
use call::Call;

/// Response header naming the route taken.
pub const ROUTE_HEADER: &str = "x-switchyard-route";
/// Request id header (propagated or generated).
pub const REQUEST_ID_HEADER: &str = switchyard_runtime::request_id::HEADER;

/// How a chat request reaches a TaskChain.
#[derive(Clone, Debug, Default)]
pub struct ChainOptions {
    /// The chain named by the path (`/v1/chains/{name}/chat/completions`); otherwise a chain is
    /// asked for with `model: "chain/NAME"`.
    pub name: Option<String>,
    /// `?stackTrace=true`: the answer carries the run's captured state units.
    pub stack_trace: bool,
}

/// A chat request for a chain, after identification, admission and guardrails: what the
/// pipeline hands to the chain engine.
#[derive(Debug)]
pub(crate) struct ChainRequest<'a> {
    pub(crate) state: &'a Arc<AppState>,
    pub(crate) table: &'a Arc<RoutingTable>,
    pub(crate) workspace: &'a WorkspaceSnapshot,
    pub(crate) caller: &'a Caller,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: Value,
    pub(crate) info: RequestInfo,
    /// `NAME` or `NAMESPACE/NAME`.
    pub(crate) name: String,
    /// Asked for at `/v1/chains/{name}/chat/completions` (else `model: chain/NAME`).
    pub(crate) by_path: bool,
    /// `?stackTrace=true`.
    pub(crate) stack_trace: bool,
}

/// The chain engine's entry point (`chain::serve`), given by the caller: the pipeline hands a
/// chain request over without depending on the engine, which itself calls models through
/// this module.
pub(crate) type ServeChain =
    for<'a> fn(ChainRequest<'a>, &'a mut Tracker) -> BoxFuture<'a, Result<Handled, ApiError>>;

/// Handles one request to a generating endpoint (no TaskChain; chat completions, which may
/// name one, go through `chain::serve::chat_completions`).
pub async fn handle(
    state: Arc<AppState>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle_with(
        state,
        endpoint,
        ChainOptions::default(),
        None,
        headers,
        body,
    )
    .await
}

/// [`handle`], with the TaskChain options of the request and the chain engine serving it.
pub(crate) async fn handle_with(
    state: Arc<AppState>,
    endpoint: Endpoint,
    chain: ChainOptions,
    serve_chain: Option<ServeChain>,
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
    let mut response = match pipeline(
        &state,
        &table,
        endpoint,
        (&chain, serve_chain),
        &headers,
        body,
        &mut tracker,
    )
    .await
    {
        Ok(Handled::Done(resp)) => resp,
        Ok(Handled::Stream(resp)) => return with_request_id(resp, &request_id),
        Err(e) => {
            tracker.failed(&e);
            e.into_response_for(dialect)
        }
    };
    if let Some(v) = tracker
        .route_header()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        response.headers_mut().insert(ROUTE_HEADER, v);
    }
    with_request_id(response, &request_id)
}

pub(crate) enum Handled {
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
    // The router's request-id layer has set it already (so logs and records name one id).
    switchyard_runtime::request_id::of(headers)
}

/// Reads the body with the size limit and the body deadline.
///
/// - A body declaring (`Content-Length`) more than `limit` bytes is refused with 413 before it is
///   polled: no byte of it is read, and a client sending `Expect: 100-continue` never gets
///   `100 Continue` (hyper sends it on the first poll).
/// - A body growing past `limit` (chunked, no length declared) gets 413 when it does.
/// - A body not complete within `timeout` of the call (made as the request arrives) gets 408,
///   however steadily it trickles in.
///
/// The refused rest of the body is not read; the server closes the HTTP/1.1 connection after
/// the answer (see `server::close_after_refused_body`).
async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let declared = body.size_hint().lower();
    if declared > limit as u64 {
        return Err(ApiError::new(
            ErrorKind::TooLarge,
            format!("request body of {declared} bytes is larger than {limit} bytes"),
        ));
    }
    match tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect()).await {
        Err(_) => Err(ApiError::new(
            ErrorKind::RequestTimeout,
            format!(
                "the request body was not received within {} ms",
                timeout.as_millis()
            ),
        )
        .code("request_body_timeout")),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::new(
                ErrorKind::TooLarge,
                format!("request body is larger than {limit} bytes"),
            ))
        }
        Ok(Err(e)) => Err(ApiError::invalid(format!(
            "could not read the request body: {e}"
        ))),
    }
}

async fn pipeline(
    state: &Arc<AppState>,
    table: &Arc<RoutingTable>,
    endpoint: Endpoint,
    (chain, serve_chain): (&ChainOptions, Option<ServeChain>),
    headers: &HeaderMap,
    body: Body,
    tracker: &mut Tracker,
) -> Result<Handled, ApiError> {
    let arrived = tokio::time::Instant::now();
    let dialect = endpoint.dialect();
    let raw = read_body(
        body,
        state.settings.max_body_bytes,
        state.settings.body_timeout,
    )
    .await?;
    let body_bytes = raw.len();
    let mut body: Value = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    tracker.body_read(raw.len());
    drop(raw);
    // A chain named by the path needs no `model` in the body.
    if let Some(name) = &chain.name
        && let Some(o) = body.as_object_mut()
        && o.get("model")
            .and_then(Value::as_str)
            .is_none_or(|m| m.trim().is_empty())
    {
        o.insert(
            "model".into(),
            Value::String(format!("{CHAIN_MODEL_PREFIX}{name}")),
        );
    }
    let info = classify::classify(endpoint, headers, &body)?;
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
    // A TaskChain (`/v1/chains/{name}/…` or `model: "chain/NAME"`) is served by the chain
    // engine after the same admission and guardrails; its model calls are routed one by one.
    let chain_name = chain.name.clone().or_else(|| {
        (endpoint == Endpoint::ChatCompletions)
            .then(|| info.model.strip_prefix(CHAIN_MODEL_PREFIX))
            .flatten()
            .map(str::to_owned)
    });
    let routes = match chain_name {
        Some(_) => Vec::new(),
        None => route::candidates(table, workspace, &info)?,
    };
    // Limits before any work on the request; tokens are charged when it is recorded. Callers
    // without a gateway key share the workspace's anonymous per-caller bucket.
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

    // Transform, in the caller's dialect (a chain's input is what the caller sent).
    if chain_name.is_none()
        && let Some(instructions) = &workspace.custom_instructions
    {
        if endpoint == Endpoint::Responses {
            responses::add_instructions(&mut body, instructions);
        } else {
            add_instructions(&mut body, dialect, instructions);
        }
    }
    run_guardrails(state, workspace, tracker, endpoint, &mut body)?;

    if let Some(name) = chain_name {
        let Some(serve_chain) = serve_chain else {
            return Err(ApiError::new(
                ErrorKind::Internal,
                "TaskChains are served on /v1/chat/completions only",
            ));
        };
        return serve_chain(
            ChainRequest {
                state,
                table,
                workspace,
                caller: &caller,
                headers,
                body,
                info,
                name,
                by_path: chain.name.is_some(),
                stack_trace: chain.stack_trace,
            },
            tracker,
        )
        .await;
    }
    // A Responses request continues a stored conversation: resolved once, before any target.
    let responses = match endpoint {
        Endpoint::Responses => Some(responses::ResponsesCall::new(
            &state.responses,
            &workspace.key,
            &body,
        )?),
        _ => None,
    };
    let call = Call {
        state,
        endpoint,
        headers,
        body: &body,
        info: &info,
        caller: &caller,
        responses: responses.as_ref(),
    };
    failover::run(&call, table, &routes, body_bytes, arrived, tracker).await
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

fn category_name(c: &guardrails::Category) -> &'static str {
    match c {
        guardrails::Category::Secrets => "secrets",
        guardrails::Category::Pii => "pii",
    }
}

/// Runs the workspace's guardrails over the caller's text in `body` (redacting it as the policy
/// says), counts the alerts, tells the tracker, and refuses a blocked request.
pub(super) fn run_guardrails(
    state: &AppState,
    workspace: &WorkspaceSnapshot,
    tracker: &mut Tracker,
    endpoint: Endpoint,
    body: &mut Value,
) -> Result<(), ApiError> {
    let policy = guardrails::Policy {
        secrets: workspace.guardrail_secrets,
        pii: workspace.guardrail_pii,
    };
    let outcome = guardrails::apply(&state.scanner, &policy, endpoint, body);
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
    // The recorded prompt is redacted of what the workspace's guardrails look for.
    tracker.guardrails_ran(
        outcome.alerts.clone(),
        policy.secrets != GuardrailAction::Off,
        policy.pii != GuardrailAction::Off,
    );
    if outcome.blocked {
        let kinds: Vec<&str> = outcome.alerts.iter().map(|a| a.kind.as_str()).collect();
        return Err(ApiError::invalid(format!(
            "request blocked by the workspace guardrails ({})",
            kinds.join(", ")
        ))
        .code("guardrail_blocked"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
