//! Which interceptions a query reads, and which page of them.

use std::collections::BTreeSet;

use super::StoreError;
use super::sql::Sql;

/// Largest page of interceptions or sessions.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// Largest page of threads.
pub const MAX_THREAD_PAGE_LIMIT: u32 = 200;

/// Conditions on interceptions; every field that is set must hold (AND). String matches are
/// exact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Who called.
    pub initiator: Option<String>,
    /// Provider type (`openai`, `anthropic`, …).
    pub provider: Option<String>,
    /// Provider or backend key (`ns/name`).
    pub provider_name: Option<String>,
    /// Matches the model requested or the model served.
    pub model: Option<String>,
    /// Client name (from User-Agent).
    pub client: Option<String>,
    /// Workspace key.
    pub workspace: Option<String>,
    /// Session: the client's session id, or an interception id for a call sent without one.
    pub session_id: Option<String>,
    /// Started at or after this instant (inclusive).
    pub started_after: Option<jiff::Timestamp>,
    /// Started before this instant (exclusive).
    pub started_before: Option<jiff::Timestamp>,
    /// Only interceptions with at least one guardrail finding.
    pub with_alerts: bool,
    /// Authorization: when set, only interceptions of these workspaces (never those without a
    /// workspace); an empty set matches nothing.
    pub allowed_workspaces: Option<BTreeSet<String>>,
}

impl Filter {
    /// Appends ` AND …` for every condition (the caller has written `WHERE <something>`).
    pub(crate) fn push_conditions(&self, sql: &mut Sql) {
        let mut eq = |column: &str, value: &Option<String>| {
            if let Some(v) = value {
                sql.push(" AND ").push(column).push(" = ").bind(v);
            }
        };
        eq("initiator", &self.initiator);
        eq("provider", &self.provider);
        eq("provider_name", &self.provider_name);
        eq("client", &self.client);
        eq("workspace", &self.workspace);
        eq("session_key", &self.session_id);
        if let Some(model) = &self.model {
            sql.push(" AND (model_requested = ")
                .bind(model)
                .push(" OR model_served = ")
                .bind(model)
                .push(")");
        }
        if let Some(t) = self.started_after {
            sql.push(" AND started_at >= ").bind(t.as_microsecond());
        }
        if let Some(t) = self.started_before {
            sql.push(" AND started_at < ").bind(t.as_microsecond());
        }
        if self.with_alerts {
            sql.push(" AND has_alerts = ").bind(true);
        }
        self.push_authorization(sql);
    }

    /// Appends only the `allowed_workspaces` condition.
    pub(crate) fn push_authorization(&self, sql: &mut Sql) {
        if let Some(allowed) = &self.allowed_workspaces {
            if allowed.is_empty() {
                sql.push(" AND 1 = 0");
            } else {
                sql.push(" AND workspace IN ").bind_list(allowed.iter());
            }
        }
    }
}

/// A page of interceptions, newest first: `limit` plus at most one of `after_id` (keyset
/// cursor: the last id of the previous page) and `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1..=1000.
    pub limit: u32,
    /// Continue after this interception (which must exist and match the filter).
    pub after_id: Option<uuid::Uuid>,
    /// Skip this many.
    pub offset: Option<u64>,
}

impl Default for Page {
    /// The first 100.
    fn default() -> Self {
        Self {
            limit: 100,
            after_id: None,
            offset: None,
        }
    }
}

impl Page {
    /// The first `limit`.
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// `limit` after the interception `id`.
    pub fn after(id: uuid::Uuid, limit: u32) -> Self {
        Self {
            limit,
            after_id: Some(id),
            offset: None,
        }
    }

    /// `limit` after skipping `offset`.
    pub fn offset(offset: u64, limit: u32) -> Self {
        Self {
            limit,
            after_id: None,
            offset: Some(offset),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_limit(self.limit, MAX_PAGE_LIMIT)?;
        if self.after_id.is_some() && self.offset.is_some() {
            return Err(StoreError::InvalidPage(
                "after_id and offset cannot be used together".into(),
            ));
        }
        Ok(())
    }
}

/// Identifies a session in a listing: sessions are grouped by (session id, initiator).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    /// The client's session id, or the interception id of a call sent without one.
    pub session_id: String,
    /// Who called.
    pub initiator: Option<String>,
}

/// A page of sessions, newest first: `limit` plus at most one of `after` (the last session of
/// the previous page) and `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPage {
    /// 1..=1000.
    pub limit: u32,
    /// Continue after this session (which must exist and match the filter).
    pub after: Option<SessionKey>,
    /// Skip this many.
    pub offset: Option<u64>,
}

impl Default for SessionPage {
    /// The first 100.
    fn default() -> Self {
        Self {
            limit: 100,
            after: None,
            offset: None,
        }
    }
}

impl SessionPage {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_limit(self.limit, MAX_PAGE_LIMIT)?;
        if self.after.is_some() && self.offset.is_some() {
            return Err(StoreError::InvalidPage(
                "after and offset cannot be used together".into(),
            ));
        }
        Ok(())
    }
}

/// A page of a session's threads, in start order: `limit` plus at most one of `after_id`
/// (threads that started after this root: forward) and `before_id` (the threads just before
/// it: backward, still returned in start order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadPage {
    /// 1..=200.
    pub limit: u32,
    /// Continue after this thread root.
    pub after_id: Option<uuid::Uuid>,
    /// The page ending just before this thread root.
    pub before_id: Option<uuid::Uuid>,
}

impl Default for ThreadPage {
    /// The first 50.
    fn default() -> Self {
        Self {
            limit: 50,
            after_id: None,
            before_id: None,
        }
    }
}

impl ThreadPage {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_limit(self.limit, MAX_THREAD_PAGE_LIMIT)?;
        if self.after_id.is_some() && self.before_id.is_some() {
            return Err(StoreError::InvalidPage(
                "after_id and before_id cannot be used together".into(),
            ));
        }
        Ok(())
    }
}

fn check_limit(limit: u32, max: u32) -> Result<(), StoreError> {
    if (1..=max).contains(&limit) {
        Ok(())
    } else {
        Err(StoreError::InvalidPage(format!(
            "limit must be in 1..={max}, got {limit}"
        )))
    }
}
