//! A workspace's usage (seed 000 TokenUsageAggregate), alerts and messages (prompt and answer
//! per interception, with alert summary and token usage). All three are authorized as
//! `get workspaces NAME` in the workspace's namespace.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::Serialize;
use switchyard_crds::Workspace;
use switchyard_crds::record::{Category, Interception};

use crate::channel::Identity;
use crate::store::{Filter, UsageCounters};

use super::Facade;
use super::error::ApiError;
use super::interceptions::{AlertView, TokenUsage, alert_view, outcome_name};
use super::query::{FILTER_KEYS, Params};
use super::views::find;

/// Query parameters of the alert and message listings.
pub(crate) const PAGE_PARAMS: &[&str] = &["q", "limit", "after_id", "offset"];

/// Filter keys of the alert and message listings (the workspace is the path's).
fn keys() -> Vec<&'static str> {
    FILTER_KEYS
        .iter()
        .copied()
        .filter(|k| *k != "workspace")
        .collect()
}

/// One model's usage in a workspace (seed 000 TokenUsageByModel).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TokenUsageByModel {
    /// Model served (else requested).
    pub model: String,
    /// Provider type, when one type served the model (else absent; see `provider_types`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// Every provider type that served it (`""`: nothing served the request).
    pub provider_types: Vec<String>,
    /// Counters.
    pub token_usage: TokenUsage,
}

/// A workspace's usage since records began (rollups: pruning old records does not lower it).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TokenUsageAggregate {
    /// Workspace key.
    pub workspace: String,
    /// By model.
    pub tokens_by_model: BTreeMap<String, TokenUsageByModel>,
    /// Over all models.
    pub token_usage: TokenUsage,
}

fn add(into: &mut UsageCounters, c: &UsageCounters) {
    into.requests += c.requests;
    into.errors += c.errors;
    into.usage.input_tokens += c.usage.input_tokens;
    into.usage.output_tokens += c.usage.output_tokens;
    into.usage.cache_read_input_tokens += c.usage.cache_read_input_tokens;
    into.usage.cache_write_input_tokens += c.usage.cache_write_input_tokens;
    into.cost.input += c.cost.input;
    into.cost.output += c.cost.output;
}

/// `GET /namespaces/{namespace}/workspaces/{name}/usage`.
pub(crate) async fn usage(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<TokenUsageAggregate>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    find::<Workspace>(&facade, &who, &namespace, &name).await?;
    let key = format!("{namespace}/{name}");
    let rows = facade
        .store
        .workspace_usage(Some(std::slice::from_ref(&key)))
        .await?;
    let mut by_model: BTreeMap<String, (UsageCounters, Vec<String>)> = BTreeMap::new();
    let mut total = UsageCounters::default();
    for r in &rows {
        let e = by_model.entry(r.model.clone()).or_default();
        add(&mut e.0, &r.counters);
        e.1.push(r.provider.clone());
        add(&mut total, &r.counters);
    }
    Ok(Json(TokenUsageAggregate {
        workspace: key,
        tokens_by_model: by_model
            .into_iter()
            .map(|(model, (c, types))| {
                let single = (types.len() == 1).then(|| types[0].clone());
                (
                    model.clone(),
                    TokenUsageByModel {
                        model,
                        provider_type: single.filter(|t| !t.is_empty()),
                        provider_types: types,
                        token_usage: TokenUsage::of(&c),
                    },
                )
            })
            .collect(),
        token_usage: TokenUsage::of(&total),
    }))
}

/// Alert counts (seed 000 AlertSummary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AlertSummary {
    /// Secret findings.
    pub secrets: u64,
    /// PII findings.
    pub pii: u64,
    /// All findings.
    pub total_alerts: u64,
}

impl AlertSummary {
    fn of(r: &Interception) -> Self {
        let mut s = Self::default();
        for a in &r.alerts {
            match a.category {
                Category::Secrets => s.secrets += 1,
                Category::Pii => s.pii += 1,
            }
            s.total_alerts += 1;
        }
        s
    }
}

/// One finding with the request it was found in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AlertEntry {
    /// The interception.
    pub interception_id: uuid::Uuid,
    /// Its start.
    pub timestamp: jiff::Timestamp,
    /// Who called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// Client.
    pub client: String,
    /// Model requested.
    pub model: String,
    /// Session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The finding.
    #[serde(flatten)]
    pub alert: AlertView,
}

/// A workspace's alerts: totals since records began, and a page of the interceptions with
/// findings (newest first), flattened to one entry per finding.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct WorkspaceAlerts {
    /// Workspace key.
    pub workspace: String,
    /// Counts over all records (rollups).
    pub summary: AlertSummary,
    /// Latest request with a finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_alert_at: Option<jiff::Timestamp>,
    /// Interceptions with findings matching the filter (all pages).
    pub count: u64,
    /// Findings of this page's interceptions.
    pub alerts: Vec<AlertEntry>,
    /// Pass as `after_id` for the next page; present when this page is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after_id: Option<uuid::Uuid>,
}

/// The workspace's records matching the request's `q`, restricted to `key`.
fn workspace_filter(params: &Params, key: &str) -> Result<Filter, ApiError> {
    let mut filter = params.filter(&keys())?;
    filter.workspace = Some(key.to_owned());
    Ok(filter)
}

fn next_after(records: &[Interception], limit: u32) -> Option<uuid::Uuid> {
    (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.id))
        .flatten()
}

/// `GET /namespaces/{namespace}/workspaces/{name}/alerts`.
pub(crate) async fn alerts(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<WorkspaceAlerts>, ApiError> {
    let params = Params::parse(query.as_deref(), PAGE_PARAMS)?;
    let page = params.page()?;
    find::<Workspace>(&facade, &who, &namespace, &name).await?;
    let key = format!("{namespace}/{name}");
    let mut filter = workspace_filter(&params, &key)?;
    filter.with_alerts = true;
    let records = facade.store.list(&filter, &page).await?;
    let count = facade.store.count(&filter).await?;
    let totals = facade
        .store
        .workspace_alerts(Some(std::slice::from_ref(&key)))
        .await?
        .into_iter()
        .next();
    Ok(Json(WorkspaceAlerts {
        workspace: key,
        summary: totals
            .as_ref()
            .map(|t| AlertSummary {
                secrets: t.alerts.secrets,
                pii: t.alerts.pii,
                total_alerts: t.alerts.total,
            })
            .unwrap_or_default(),
        last_alert_at: totals.map(|t| t.last_alert_at),
        count,
        next_after_id: next_after(&records, page.limit),
        alerts: records
            .iter()
            .flat_map(|r| {
                r.alerts.iter().map(|a| AlertEntry {
                    interception_id: r.id,
                    timestamp: r.started_at,
                    initiator: r.initiator.clone(),
                    client: r.client.clone(),
                    model: r.model_requested.clone(),
                    session_id: r.session_id.clone(),
                    alert: alert_view(a),
                })
            })
            .collect(),
    }))
}

/// The prompt side of a message (seed 000 ChatMessage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Prompt {
    /// The last user message (redacted by the guardrails, truncated).
    pub message: String,
    /// When it was sent.
    pub timestamp: jiff::Timestamp,
    /// The interception id.
    pub message_id: uuid::Uuid,
}

/// The answer side of a message: what the gateway records about it. The data plane does not
/// store response text, so there is no `message`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Answer {
    /// Model that answered (served, else requested).
    pub model: String,
    /// When the answer ended.
    pub timestamp: jiff::Timestamp,
    /// HTTP status returned to the caller.
    pub status: u16,
    /// Outcome.
    pub outcome: String,
    /// Finish reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Names of the tools the model called.
    pub tool_calls: Vec<String>,
    /// Output tokens.
    pub output_tokens: u64,
    /// Error, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One prompt and its answer (seed 000 ConversationSummary).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Message {
    /// The interception id.
    pub chat_id: uuid::Uuid,
    /// `chat`, `completions` or `embeddings`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Start.
    pub conversation_timestamp: jiff::Timestamp,
    /// Provider type that served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Provider or backend key that served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// Who called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// Session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The prompt, when the request had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Prompt>,
    /// The answer.
    pub answer: Answer,
    /// Findings in the prompt.
    pub alerts_summary: AlertSummary,
    /// Tokens and cost.
    pub token_usage: TokenUsage,
}

/// A page of a workspace's messages, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct MessageList {
    /// Workspace key.
    pub workspace: String,
    /// Messages matching the filter (all pages).
    pub total: u64,
    /// Page size.
    pub limit: u32,
    /// Offset of this page, when paginating by offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// This page.
    pub data: Vec<Message>,
    /// Pass as `after_id` for the next page; present when this page is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after_id: Option<uuid::Uuid>,
}

fn endpoint_type(endpoint: &str) -> &'static str {
    if endpoint.ends_with("/embeddings") {
        "embeddings"
    } else if endpoint.ends_with("/completions") && !endpoint.ends_with("/chat/completions") {
        "completions"
    } else {
        "chat"
    }
}

fn message(r: &Interception) -> Message {
    Message {
        chat_id: r.id,
        type_: endpoint_type(&r.endpoint).to_owned(),
        conversation_timestamp: r.started_at,
        provider: r.provider.clone(),
        provider_name: r.provider_name.clone(),
        initiator: r.initiator.clone(),
        session_id: r.session_id.clone(),
        prompt: r.user_prompt.as_ref().map(|p| Prompt {
            message: p.clone(),
            timestamp: r.started_at,
            message_id: r.id,
        }),
        answer: Answer {
            model: r
                .model_served
                .clone()
                .unwrap_or_else(|| r.model_requested.clone()),
            timestamp: r.ended_at,
            status: r.status,
            outcome: outcome_name(r.outcome),
            finish_reason: r.finish_reason.clone(),
            tool_calls: r.tool_usages.iter().map(|t| t.name.clone()).collect(),
            output_tokens: r.usage.output_tokens,
            error: r.error.clone(),
        },
        alerts_summary: AlertSummary::of(r),
        token_usage: TokenUsage::from_usage(
            1,
            u64::from(r.outcome != switchyard_crds::record::Outcome::Success),
            &r.usage,
            r.cost.input,
            r.cost.output,
        ),
    }
}

/// `GET /namespaces/{namespace}/workspaces/{name}/messages`.
pub(crate) async fn messages(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<MessageList>, ApiError> {
    let params = Params::parse(query.as_deref(), PAGE_PARAMS)?;
    let page = params.page()?;
    find::<Workspace>(&facade, &who, &namespace, &name).await?;
    let key = format!("{namespace}/{name}");
    let filter = workspace_filter(&params, &key)?;
    let records = facade.store.list(&filter, &page).await?;
    let total = facade.store.count(&filter).await?;
    Ok(Json(MessageList {
        workspace: key,
        total,
        limit: page.limit,
        offset: page.offset,
        next_after_id: next_after(&records, page.limit),
        data: records.iter().map(message).collect(),
    }))
}
