//! Interceptions (seed 004), their summary (seed 001's inference-log summary), and the distinct
//! clients and models seen.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use switchyard_crds::record::{Interception, Outcome};
use switchyard_crds::usage::Usage;

use crate::channel::Identity;
use crate::store::{Filter, UsageCounters};

use super::Facade;
use super::error::ApiError;
use super::query::{FILTER_KEYS, Params};

/// Query parameters of the interception listing.
pub(crate) const LIST_PARAMS: &[&str] = &["q", "limit", "after_id", "offset"];

/// Token usage of one interception (seed 004 AIBridgeTokenUsage), with its cost.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TokenUsageView {
    /// The interception.
    pub interception_id: uuid::Uuid,
    /// Plain input tokens (neither read from nor written to a prompt cache).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_input_tokens: u64,
    /// Cost of the input tokens, USD.
    pub input_cost: f64,
    /// Cost of the output tokens, USD.
    pub output_cost: f64,
    /// Where the cost comes from: `declared` (a price the serving Provider/Backend declares)
    /// or `unpriced` (nothing prices the model: the cost is unknown, shown as 0); absent when
    /// no upstream served the call, and for records from data planes that predate it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_source: Option<&'static str>,
    /// Estimated by the gateway (the caller left before the upstream reported usage).
    pub estimated: bool,
    /// When it was reported (the interception's end).
    pub created_at: jiff::Timestamp,
}

/// A tool call the model made (seed 004 AIBridgeToolUsage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ToolUsageView {
    /// The interception.
    pub interception_id: uuid::Uuid,
    /// Tool call id.
    pub id: String,
    /// Tool name.
    pub tool: String,
    /// Tool injected by the gateway (never, today: tools come from the caller).
    pub injected: bool,
    /// When (the interception's end).
    pub created_at: jiff::Timestamp,
}

/// The user prompt of an interception (seed 004 AIBridgeUserPrompt): the last user message,
/// redacted by the workspace's guardrails and truncated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct UserPromptView {
    /// The interception.
    pub interception_id: uuid::Uuid,
    /// Prompt text.
    pub prompt: String,
    /// When (the interception's start).
    pub created_at: jiff::Timestamp,
}

/// A guardrail finding (never the matched text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AlertView {
    /// `secrets` or `pii`.
    pub category: String,
    /// Detector, e.g. `github_token`, `email`.
    pub kind: String,
    /// What the workspace's policy did: `alert`, `redact` or `block`.
    pub action: String,
    /// Context with every finding replaced by `[REDACTED:<kind>]`.
    pub snippet: String,
    /// JSON pointer of the string in the request body.
    pub location: String,
}

/// The route taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RouteView {
    /// `policy`, `muxrule` or `model`.
    pub source: String,
    /// Key of the deciding RouterPolicy or MuxRule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Target that answered (or the last one tried).
    pub target: String,
}

/// One upstream attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AttemptView {
    /// Target, e.g. `provider/NAME:model`.
    pub target: String,
    /// Backend picked in an AffinityGroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Model asked for.
    pub model: String,
    /// HTTP status of the upstream, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time to the upstream's response headers (or the failure), ms.
    pub latency_ms: u64,
}

/// One request through the gateway (seed 004 AIBridgeInterception, with the route, attempts,
/// alerts and costs Switchyard records).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct InterceptionView {
    /// Interception id (UUIDv7).
    pub id: uuid::Uuid,
    /// `x-request-id`.
    pub request_id: String,
    /// Start.
    pub started_at: jiff::Timestamp,
    /// End.
    pub ended_at: jiff::Timestamp,
    /// Endpoint path.
    pub endpoint: String,
    /// Workspace key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Who called: gateway key name, ServiceAccount, or the body's `user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// How the caller authenticated: `gateway_key`, `passthrough` or `none`.
    pub credential_kind: String,
    /// Client from User-Agent.
    pub client: String,
    /// Session id (the client's, else absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Provider or backend type that served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Provider or backend key that served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// Model the caller asked for.
    pub model: String,
    /// Model asked of the upstream that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_served: Option<String>,
    /// HTTP status returned to the caller.
    pub status: u16,
    /// `success`, `upstream_error`, `rejected`, `gateway_error` or `cancelled`.
    pub outcome: String,
    /// Error message (never contains credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Streamed.
    pub stream: bool,
    /// Total time, ms.
    pub latency_ms: u64,
    /// Time to first token, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// Finish reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Token usage (one entry: Switchyard records one usage per interception).
    pub token_usages: Vec<TokenUsageView>,
    /// Tool calls the model made.
    pub tool_usages: Vec<ToolUsageView>,
    /// The user prompt, when the request had one.
    pub user_prompts: Vec<UserPromptView>,
    /// Request metadata (the body's `metadata`), else `{}`.
    pub metadata: Value,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Guardrail findings.
    pub alerts: Vec<AlertView>,
    /// Route taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteView>,
    /// Upstream attempts in order.
    pub attempts: Vec<AttemptView>,
    /// TaskChain key, for a chain run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The interception that started this thread, for follow-up calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_root_id: Option<uuid::Uuid>,
    /// Routing snapshot version in force.
    pub snapshot_version: String,
}

pub(crate) fn outcome_name(o: Outcome) -> String {
    crate::store::outcome_name(o).to_owned()
}

impl From<&Interception> for InterceptionView {
    fn from(r: &Interception) -> Self {
        Self {
            id: r.id,
            request_id: r.request_id.clone(),
            started_at: r.started_at,
            ended_at: r.ended_at,
            endpoint: r.endpoint.clone(),
            workspace: r.workspace.clone(),
            initiator: r.initiator.clone(),
            credential_kind: r.credential_kind.clone(),
            client: r.client.clone(),
            session_id: r.session_id.clone(),
            provider: r.provider.clone(),
            provider_name: r.provider_name.clone(),
            model: r.model_requested.clone(),
            model_served: r.model_served.clone(),
            status: r.status,
            outcome: outcome_name(r.outcome),
            error: r.error.clone(),
            stream: r.stream,
            latency_ms: r.latency_ms,
            ttft_ms: r.ttft_ms,
            finish_reason: r.finish_reason.clone(),
            token_usages: vec![TokenUsageView {
                interception_id: r.id,
                input_tokens: r.usage.input_tokens,
                output_tokens: r.usage.output_tokens,
                cache_read_input_tokens: r.usage.cache_read_input_tokens,
                cache_write_input_tokens: r.usage.cache_write_input_tokens,
                input_cost: r.cost.input,
                output_cost: r.cost.output,
                cost_source: r.cost_source.map(|s| s.as_str()),
                estimated: r.usage_estimated,
                created_at: r.ended_at,
            }],
            tool_usages: tool_usages(r),
            user_prompts: r
                .user_prompt
                .iter()
                .map(|p| UserPromptView {
                    interception_id: r.id,
                    prompt: p.clone(),
                    created_at: r.started_at,
                })
                .collect(),
            metadata: r
                .metadata
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default())),
            tags: r.tags.clone(),
            alerts: r.alerts.iter().map(alert_view).collect(),
            route: r.route.as_ref().map(|x| RouteView {
                source: x.source.clone(),
                rule: x.rule.clone(),
                target: x.target.clone(),
            }),
            attempts: r
                .attempts
                .iter()
                .map(|a| AttemptView {
                    target: a.target.clone(),
                    backend: a.backend.clone(),
                    model: a.model.clone(),
                    status: a.status,
                    error: a.error.clone(),
                    latency_ms: a.latency_ms,
                })
                .collect(),
            chain: r.chain.clone(),
            thread_root_id: r.thread_root_id,
            snapshot_version: r.snapshot_version.clone(),
        }
    }
}

/// The tool calls of an interception.
pub(crate) fn tool_usages(r: &Interception) -> Vec<ToolUsageView> {
    r.tool_usages
        .iter()
        .map(|t| ToolUsageView {
            interception_id: r.id,
            id: t.id.clone(),
            tool: t.name.clone(),
            injected: false,
            created_at: r.ended_at,
        })
        .collect()
}

pub(crate) fn alert_view(a: &switchyard_crds::record::Alert) -> AlertView {
    AlertView {
        category: a.category.as_str().to_owned(),
        kind: a.kind.clone(),
        action: a.action.as_str().to_owned(),
        snippet: a.snippet.clone(),
        location: a.location.clone(),
    }
}

/// A page of interceptions, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InterceptionList {
    /// Interceptions matching the filter (all pages).
    pub count: u64,
    /// This page.
    pub results: Vec<InterceptionView>,
    /// Pass as `after_id` for the next page; present when this page is full (the next one may
    /// be empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after_id: Option<uuid::Uuid>,
}

/// The filter of a record endpoint, restricted to what the caller may see.
pub(crate) async fn visible_filter(
    facade: &Facade,
    who: &Identity,
    params: &Params,
    keys: &[&str],
) -> Result<Filter, ApiError> {
    let mut filter = params.filter(keys)?;
    facade
        .access(who)
        .restrict(&facade.store, &mut filter)
        .await?;
    Ok(filter)
}

/// `GET /interceptions`.
pub(crate) async fn list(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<InterceptionList>, ApiError> {
    let params = Params::parse(query.as_deref(), LIST_PARAMS)?;
    let page = params.page()?;
    let filter = visible_filter(&facade, &who, &params, FILTER_KEYS).await?;
    let records = facade.store.list(&filter, &page).await?;
    let count = facade.store.count(&filter).await?;
    Ok(Json(InterceptionList {
        count,
        next_after_id: (records.len() == page.limit as usize)
            .then(|| records.last().map(|r| r.id))
            .flatten(),
        results: records.iter().map(InterceptionView::from).collect(),
    }))
}

/// Tokens, requests and cost of a set of interceptions.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TokenUsage {
    /// Requests.
    pub requests: u64,
    /// Requests that did not succeed.
    pub errors: u64,
    /// Plain input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_input_tokens: u64,
    /// All tokens: plain input, cache reads and writes, output.
    pub total_tokens: u64,
    /// Input cost, USD.
    pub input_cost: f64,
    /// Output cost, USD.
    pub output_cost: f64,
    /// Input plus output cost, USD.
    pub total_cost: f64,
}

impl TokenUsage {
    /// From store counters.
    pub fn of(c: &UsageCounters) -> Self {
        Self::from_usage(c.requests, c.errors, &c.usage, c.cost.input, c.cost.output)
    }

    /// From one usage and cost.
    pub fn from_usage(
        requests: u64,
        errors: u64,
        u: &Usage,
        input_cost: f64,
        output_cost: f64,
    ) -> Self {
        Self {
            requests,
            errors,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_input_tokens: u.cache_read_input_tokens,
            cache_write_input_tokens: u.cache_write_input_tokens,
            total_tokens: u.total(),
            input_cost,
            output_cost,
            total_cost: input_cost + output_cost,
        }
    }
}

/// The summary of the interceptions matching a filter (seed 001 inference-log summary).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct InterceptionSummary {
    /// `started_after` of the filter, else the first matching start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_start: Option<jiff::Timestamp>,
    /// `started_before` of the filter, else the last matching start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_end: Option<jiff::Timestamp>,
    /// Interceptions.
    pub total_calls: u64,
    /// Fraction (0..=1) that succeeded; 0 without calls.
    pub success_rate: f64,
    /// Mean latency, ms.
    pub avg_latency_ms: f64,
    /// Median latency (nearest rank), ms.
    pub p50_latency_ms: u64,
    /// 95th percentile latency (nearest rank), ms.
    pub p95_latency_ms: u64,
    /// Plain input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_input_tokens: u64,
    /// All tokens.
    pub total_tokens: u64,
    /// Input cost, USD.
    pub input_cost: f64,
    /// Output cost, USD.
    pub output_cost: f64,
    /// Total cost, USD.
    pub total_cost: f64,
    /// Per model (served, else requested).
    pub model_usage: BTreeMap<String, TokenUsage>,
}

/// `GET /interceptions/summary`.
pub(crate) async fn summary(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<InterceptionSummary>, ApiError> {
    let params = Params::parse(query.as_deref(), &["q"])?;
    let filter = visible_filter(&facade, &who, &params, FILTER_KEYS).await?;
    let s = facade.store.summary(&filter).await?;
    Ok(Json(InterceptionSummary {
        period_start: s.period_start,
        period_end: s.period_end,
        total_calls: s.total_calls,
        success_rate: s.success_rate,
        avg_latency_ms: s.avg_latency_ms,
        p50_latency_ms: s.p50_latency_ms,
        p95_latency_ms: s.p95_latency_ms,
        input_tokens: s.usage.input_tokens,
        output_tokens: s.usage.output_tokens,
        cache_read_input_tokens: s.usage.cache_read_input_tokens,
        cache_write_input_tokens: s.usage.cache_write_input_tokens,
        total_tokens: s.total_tokens,
        input_cost: s.cost.input,
        output_cost: s.cost.output,
        total_cost: s.cost.input + s.cost.output,
        model_usage: s
            .models
            .iter()
            .map(|m| (m.model.clone(), TokenUsage::of(&m.counters)))
            .collect(),
    }))
}

/// `GET /clients`: client names seen (User-Agent derived), sorted.
pub(crate) async fn clients(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<String>>, ApiError> {
    let params = Params::parse(query.as_deref(), &["q"])?;
    let filter = visible_filter(&facade, &who, &params, FILTER_KEYS).await?;
    Ok(Json(facade.store.distinct_clients(&filter).await?))
}

/// `GET /models`: models requested or served, sorted.
pub(crate) async fn models(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<String>>, ApiError> {
    let params = Params::parse(query.as_deref(), &["q"])?;
    let filter = visible_filter(&facade, &who, &params, FILTER_KEYS).await?;
    Ok(Json(facade.store.distinct_models(&filter).await?))
}
