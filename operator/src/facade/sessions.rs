//! Sessions (seed 004): interceptions grouped by (session id, initiator), and one session's
//! threads: a root interception (a user prompt) and the calls that followed it.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use switchyard_crds::usage::Usage;

use crate::channel::Identity;
use crate::store::{
    MAX_PAGE_LIMIT, MAX_THREAD_PAGE_LIMIT, Session, SessionKey, SessionPage, StoreError, Thread,
    ThreadPage,
};

use super::Facade;
use super::error::ApiError;
use super::interceptions::{ToolUsageView, outcome_name, tool_usages, visible_filter};
use super::query::{DEFAULT_LIMIT, FILTER_KEYS, Params};

/// Query parameters of the session listing.
pub(crate) const LIST_PARAMS: &[&str] = &["q", "limit", "after", "offset"];
/// Query parameters of one session.
pub(crate) const GET_PARAMS: &[&str] = &["q", "limit", "after_id", "before_id"];

/// Token counts of a session, thread or call (seed 004 token usage summary), with cost.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TokenUsageSummary {
    /// Plain input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_input_tokens: u64,
    /// Input plus output cost, USD.
    pub cost: f64,
}

impl TokenUsageSummary {
    fn of(u: &Usage, cost: f64) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_input_tokens: u.cache_read_input_tokens,
            cache_write_input_tokens: u.cache_write_input_tokens,
            cost,
        }
    }
}

/// A session in a listing (seed 004 AIBridgeSession).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SessionView {
    /// The client's session id, or the interception id of a call sent without one.
    pub id: String,
    /// Who called (sessions of different initiators are listed apart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// Pass as `after` to continue the listing after this session.
    pub cursor: String,
    /// Clients seen.
    pub clients: Vec<String>,
    /// Models used.
    pub models: Vec<String>,
    /// Provider types used.
    pub providers: Vec<String>,
    /// First start.
    pub started_at: jiff::Timestamp,
    /// Last start.
    pub last_active_at: jiff::Timestamp,
    /// Last end.
    pub ended_at: jiff::Timestamp,
    /// User prompt of the latest interception, if it recorded one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_prompt: Option<String>,
    /// Interceptions.
    pub interceptions: u64,
    /// Threads (root interceptions).
    pub threads: u64,
    /// Interceptions that did not succeed.
    pub errors: u64,
    /// Tokens and cost of all its (matching) interceptions.
    pub token_usage_summary: TokenUsageSummary,
}

/// A page of sessions, newest first (by first start).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SessionList {
    /// Sessions matching the filter (all pages).
    pub count: u64,
    /// This page.
    pub sessions: Vec<SessionView>,
    /// Pass as `after` for the next page; present when this page is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The cursor of a session: hex of the JSON `[session_id, initiator]` (opaque to callers).
fn cursor(key: &SessionKey) -> String {
    hex::encode(serde_json::to_vec(&(&key.session_id, &key.initiator)).unwrap_or_default())
}

fn parse_cursor(text: &str) -> Result<SessionKey, ApiError> {
    #[derive(Deserialize)]
    struct Key(String, Option<String>);
    let bad = || ApiError::invalid("after", format!("invalid session cursor {text:?}"));
    let bytes = hex::decode(text).map_err(|_| bad())?;
    let Key(session_id, initiator) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(SessionKey {
        session_id,
        initiator,
    })
}

fn session_view(s: &Session) -> SessionView {
    SessionView {
        id: s.session_id.clone(),
        initiator: s.initiator.clone(),
        cursor: cursor(&s.key()),
        clients: s.clients.clone(),
        models: s.models.clone(),
        providers: s.providers.clone(),
        started_at: s.started_at,
        last_active_at: s.last_active_at,
        ended_at: s.ended_at,
        last_prompt: s.last_prompt.clone(),
        interceptions: s.interceptions,
        threads: s.threads,
        errors: s.errors,
        token_usage_summary: TokenUsageSummary::of(&s.usage, s.cost.input + s.cost.output),
    }
}

fn cursor_error(e: StoreError, param: &str) -> ApiError {
    match e {
        StoreError::UnknownCursor(c) => ApiError::invalid(
            param,
            format!("invalid pagination cursor {c:?}: no such item matches the filter"),
        ),
        other => other.into(),
    }
}

/// `GET /sessions`.
pub(crate) async fn list(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<SessionList>, ApiError> {
    let params = Params::parse(query.as_deref(), LIST_PARAMS)?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_PAGE_LIMIT)?;
    let after = params.get("after").map(parse_cursor).transpose()?;
    let offset = params.number("offset")?;
    if after.is_some() && offset.is_some() {
        return Err(ApiError::invalid(
            "offset",
            "after and offset cannot be used together",
        ));
    }
    let filter = visible_filter(&facade, &who, &params, FILTER_KEYS).await?;
    let page = SessionPage {
        limit,
        after,
        offset,
    };
    let sessions = facade
        .store
        .sessions(&filter, &page)
        .await
        .map_err(|e| cursor_error(e, "after"))?;
    let count = facade.store.count_sessions(&filter).await?;
    Ok(Json(SessionList {
        count,
        next_cursor: (sessions.len() == limit as usize)
            .then(|| sessions.last().map(|s| cursor(&s.key())))
            .flatten(),
        sessions: sessions.iter().map(session_view).collect(),
    }))
}

/// One call of a thread (seed 004 AIBridgeAgenticAction).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ActionView {
    /// The interception.
    pub interception_id: uuid::Uuid,
    /// Start.
    pub started_at: jiff::Timestamp,
    /// Model served (else requested).
    pub model: String,
    /// Outcome.
    pub outcome: String,
    /// Tool calls the model made.
    pub tool_calls: Vec<ToolUsageView>,
    /// Tokens and cost.
    pub token_usage: TokenUsageSummary,
}

/// A user prompt and the calls that followed it (seed 004 AIBridgeThread).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ThreadView {
    /// The root interception's id.
    pub id: uuid::Uuid,
    /// The user prompt of the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Model of the root (served, else requested).
    pub model: String,
    /// Provider type of the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// How the caller authenticated.
    pub credential_kind: String,
    /// Start of the root.
    pub started_at: jiff::Timestamp,
    /// Latest end in the thread.
    pub ended_at: jiff::Timestamp,
    /// The root and each call that followed, in start order.
    pub agentic_actions: Vec<ActionView>,
    /// Tokens and cost of the whole thread.
    pub token_usage: TokenUsageSummary,
}

/// One session with a page of its threads (seed 004 AIBridgeSessionThreadsResponse).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SessionThreads {
    /// Session id.
    pub id: String,
    /// Initiators seen in it.
    pub initiators: Vec<String>,
    /// Clients seen.
    pub clients: Vec<String>,
    /// Models used.
    pub models: Vec<String>,
    /// Provider types used.
    pub providers: Vec<String>,
    /// First start.
    pub started_at: jiff::Timestamp,
    /// Last end.
    pub ended_at: jiff::Timestamp,
    /// Threads in the session (all pages).
    pub thread_count: u64,
    /// Start of the first thread on this page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_started_at: Option<jiff::Timestamp>,
    /// Start of the last thread on this page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_ended_at: Option<jiff::Timestamp>,
    /// This page of threads, in start order.
    pub threads: Vec<ThreadView>,
    /// Tokens and cost over the whole session (every thread, not only this page).
    pub token_usage_summary: TokenUsageSummary,
}

fn action(r: &switchyard_crds::record::Interception) -> ActionView {
    ActionView {
        interception_id: r.id,
        started_at: r.started_at,
        model: r
            .model_served
            .clone()
            .unwrap_or_else(|| r.model_requested.clone()),
        outcome: outcome_name(r.outcome),
        tool_calls: tool_usages(r),
        token_usage: TokenUsageSummary::of(&r.usage, r.cost.input + r.cost.output),
    }
}

fn thread_view(t: &Thread) -> ThreadView {
    let actions: Vec<ActionView> = std::iter::once(&t.root)
        .chain(&t.calls)
        .map(action)
        .collect();
    let cost = t.root.cost.input
        + t.root.cost.output
        + t.calls
            .iter()
            .map(|c| c.cost.input + c.cost.output)
            .sum::<f64>();
    ThreadView {
        id: t.root.id,
        prompt: t.root.user_prompt.clone(),
        model: t
            .root
            .model_served
            .clone()
            .unwrap_or_else(|| t.root.model_requested.clone()),
        provider: t.root.provider.clone(),
        credential_kind: t.root.credential_kind.clone(),
        started_at: t.root.started_at,
        ended_at: std::iter::once(&t.root)
            .chain(&t.calls)
            .map(|r| r.ended_at)
            .max()
            .unwrap_or(t.root.ended_at),
        token_usage: TokenUsageSummary::of(&t.usage(), cost),
        agentic_actions: actions,
    }
}

/// `GET /sessions/{id}`: 404 when no visible interception has this session id.
pub(crate) async fn get(
    State(facade): State<Arc<Facade>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<SessionThreads>, ApiError> {
    let params = Params::parse(query.as_deref(), GET_PARAMS)?;
    let page = ThreadPage {
        limit: params.limit(50, MAX_THREAD_PAGE_LIMIT)?,
        after_id: params.uuid("after_id")?,
        before_id: params.uuid("before_id")?,
    };
    if page.after_id.is_some() && page.before_id.is_some() {
        return Err(ApiError::invalid(
            "before_id",
            "after_id and before_id cannot be used together",
        ));
    }
    let keys: Vec<&str> = FILTER_KEYS
        .iter()
        .copied()
        .filter(|k| *k != "session_id")
        .collect();
    let mut filter = visible_filter(&facade, &who, &params, &keys).await?;
    filter.session_id = Some(id.clone());
    let groups = facade
        .store
        .sessions(
            &filter,
            &SessionPage {
                limit: MAX_PAGE_LIMIT,
                ..Default::default()
            },
        )
        .await?;
    if groups.is_empty() {
        return Err(ApiError::not_found(format!("session {id:?} not found")));
    }
    let threads = facade
        .store
        .session_threads(&id, &filter, &page)
        .await
        .map_err(|e| {
            let param = if page.before_id.is_some() {
                "before_id"
            } else {
                "after_id"
            };
            cursor_error(e, param)
        })?;
    let union = |f: fn(&Session) -> &Vec<String>| -> Vec<String> {
        groups
            .iter()
            .flat_map(|s| f(s).iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let mut usage = Usage::default();
    let mut cost = 0.0;
    for s in &groups {
        usage.input_tokens += s.usage.input_tokens;
        usage.output_tokens += s.usage.output_tokens;
        usage.cache_read_input_tokens += s.usage.cache_read_input_tokens;
        usage.cache_write_input_tokens += s.usage.cache_write_input_tokens;
        cost += s.cost.input + s.cost.output;
    }
    Ok(Json(SessionThreads {
        initiators: groups
            .iter()
            .filter_map(|s| s.initiator.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        clients: union(|s| &s.clients),
        models: union(|s| &s.models),
        providers: union(|s| &s.providers),
        started_at: groups
            .iter()
            .map(|s| s.started_at)
            .min()
            .unwrap_or_else(jiff::Timestamp::now),
        ended_at: groups
            .iter()
            .map(|s| s.ended_at)
            .max()
            .unwrap_or_else(jiff::Timestamp::now),
        thread_count: groups.iter().map(|s| s.threads).sum(),
        page_started_at: threads.first().map(|t| t.root.started_at),
        page_ended_at: threads.last().map(|t| t.root.started_at),
        threads: threads.iter().map(thread_view).collect(),
        token_usage_summary: TokenUsageSummary::of(&usage, cost),
        id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for key in [
            SessionKey {
                session_id: "s 1/é".into(),
                initiator: Some("alice".into()),
            },
            SessionKey {
                session_id: "x".into(),
                initiator: None,
            },
        ] {
            assert_eq!(parse_cursor(&cursor(&key)), Ok(key));
        }
        for bad in ["zz", "00", &hex::encode(b"[1,2]")] {
            assert_eq!(
                parse_cursor(bad).err().and_then(|e| e.body().error.param),
                Some("after".to_owned())
            );
        }
    }
}
