//! Reads for the admin facade: interceptions, their summary, sessions and threads.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use switchyard_crds::record::{Cost, Interception};
use switchyard_crds::usage::Usage;

use super::filter::{Filter, Page, SessionKey, SessionPage, ThreadPage};
use super::rollup::{CounterRow, UsageCounters, count, int, timestamp, total_tokens};
use super::sql::{Sql, sum_int};
use super::{Store, StoreError};

/// Aggregate over the interceptions matching a filter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `started_after` of the filter, else the first matching start.
    pub period_start: Option<jiff::Timestamp>,
    /// `started_before` of the filter, else the last matching start.
    pub period_end: Option<jiff::Timestamp>,
    /// Interceptions.
    pub total_calls: u64,
    /// Fraction (0.0..=1.0) whose outcome was success; 0.0 without calls.
    pub success_rate: f64,
    /// Mean total latency, ms; 0.0 without calls.
    pub avg_latency_ms: f64,
    /// Median total latency (nearest rank), ms.
    pub p50_latency_ms: u64,
    /// 95th percentile of total latency (nearest rank), ms.
    pub p95_latency_ms: u64,
    /// Token counts (input is the plain part; cache reads and writes are separate).
    pub usage: Usage,
    /// Plain input + cache reads + cache writes + output.
    pub total_tokens: u64,
    /// Cost in USD.
    pub cost: Cost,
    /// Per model (served, or requested when nothing served it), sorted by model.
    pub models: Vec<ModelSummary>,
}

/// One model's share of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    /// Model served, or requested when nothing served it.
    pub model: String,
    /// Calls (`requests`), errors, tokens and cost.
    pub counters: UsageCounters,
}

/// Interceptions grouped by (session id, initiator).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// The client's session id, or the interception id of a call sent without one.
    pub session_id: String,
    /// Who called.
    pub initiator: Option<String>,
    /// First start.
    pub started_at: jiff::Timestamp,
    /// Last start.
    pub last_active_at: jiff::Timestamp,
    /// Last end.
    pub ended_at: jiff::Timestamp,
    /// Interceptions.
    pub interceptions: u64,
    /// Threads: interceptions without a `thread_root_id`, or whose root is not stored (as in
    /// [`Store::session_threads`]).
    pub threads: u64,
    /// Interceptions whose outcome was not success.
    pub errors: u64,
    /// Token counts.
    pub usage: Usage,
    /// Cost in USD.
    pub cost: Cost,
    /// Models used (served, or requested when nothing served), sorted.
    pub models: Vec<String>,
    /// Provider types used, sorted.
    pub providers: Vec<String>,
    /// Clients seen, sorted.
    pub clients: Vec<String>,
    /// User prompt of the latest matching interception (ties by id), if it recorded one.
    pub last_prompt: Option<String>,
}

impl Session {
    /// The key to continue a listing after this session.
    pub fn key(&self) -> SessionKey {
        SessionKey {
            session_id: self.session_id.clone(),
            initiator: self.initiator.clone(),
        }
    }
}

/// A root interception and the calls made in it (those whose `thread_root_id` is the root's id),
/// in start order.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    /// The interception that started the thread.
    pub root: Interception,
    /// The calls made in it.
    pub calls: Vec<Interception>,
}

impl Thread {
    /// Tokens of the root and all its calls (a chain run's own record counts nothing: its
    /// calls carry its tokens).
    pub fn usage(&self) -> Usage {
        let mut u = self.root.own_usage().0;
        for c in &self.calls {
            u.input_tokens += c.usage.input_tokens;
            u.output_tokens += c.usage.output_tokens;
            u.cache_read_input_tokens += c.usage.cache_read_input_tokens;
            u.cache_write_input_tokens += c.usage.cache_write_input_tokens;
        }
        u
    }
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    record: String,
}

impl RecordRow {
    fn decode(self) -> Result<Interception, StoreError> {
        serde_json::from_str(&self.record)
            .map_err(|e| StoreError::Decode(format!("interception record: {e}")))
    }
}

#[derive(sqlx::FromRow)]
struct StartedRow {
    started_at: i64,
}

#[derive(sqlx::FromRow)]
struct OptStartedRow {
    started_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct CountRow {
    n: i64,
}

#[derive(sqlx::FromRow)]
struct LatencyRow {
    latency_ms: i64,
}

#[derive(sqlx::FromRow)]
struct TextRow {
    value: String,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    #[sqlx(flatten)]
    counters: CounterRow,
    avg_latency_ms: Option<f64>,
    first_started_at: Option<i64>,
    last_started_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ModelSummaryRow {
    model: String,
    #[sqlx(flatten)]
    counters: CounterRow,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    session_key: String,
    initiator_key: String,
    started_at: i64,
    last_active_at: i64,
    ended_at: i64,
    threads: i64,
    #[sqlx(flatten)]
    counters: CounterRow,
}

#[derive(sqlx::FromRow)]
struct SessionLastRow {
    session_key: String,
    initiator_key: String,
    started_at: i64,
    record: String,
}

#[derive(sqlx::FromRow)]
struct SessionAttrRow {
    session_key: String,
    initiator_key: String,
    model: String,
    provider: Option<String>,
    client: String,
}

/// The counters of a set of interceptions (named like the rollup columns).
const COUNTERS: &str = "COUNT(*) AS requests, \
    CAST(COALESCE(SUM(CASE WHEN outcome <> 'success' THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
    CAST(COALESCE(SUM(cache_read_input_tokens), 0) AS BIGINT) AS cache_read_input_tokens, \
    CAST(COALESCE(SUM(cache_write_input_tokens), 0) AS BIGINT) AS cache_write_input_tokens, \
    CAST(COALESCE(SUM(input_cost), 0) AS DOUBLE PRECISION) AS input_cost, \
    CAST(COALESCE(SUM(output_cost), 0) AS DOUBLE PRECISION) AS output_cost";

/// A thread root in a session: no `thread_root_id`, or one whose root is not stored (not
/// shipped yet, or pruned), so no call is ever hidden.
/// Written for the outer table aliased `i`.
const IS_ROOT: &str = "(i.thread_root_id IS NULL OR NOT EXISTS \
    (SELECT 1 FROM interceptions r WHERE r.id = i.thread_root_id))";

fn where_filter(select: &str, filter: &Filter) -> Sql {
    let mut sql = Sql::new(select);
    sql.push(" WHERE 1 = 1");
    filter.push_conditions(&mut sql);
    sql
}

impl Store {
    /// Interceptions matching `filter`, newest first (ties on `started_at` by id, descending).
    pub async fn list(
        &self,
        filter: &Filter,
        page: &Page,
    ) -> Result<Vec<Interception>, StoreError> {
        page.validate()?;
        let mut sql = where_filter("SELECT record FROM interceptions", filter);
        if let Some(after) = page.after_id {
            let mut pos = where_filter("SELECT started_at FROM interceptions", filter);
            pos.push(" AND id = ").bind(after);
            let Some(StartedRow { started_at }) = self.db.fetch_optional(pos).await? else {
                return Err(StoreError::UnknownCursor(after.to_string()));
            };
            sql.push(" AND (started_at < ")
                .bind(started_at)
                .push(" OR (started_at = ")
                .bind(started_at)
                .push(" AND id < ")
                .bind(after)
                .push("))");
        }
        sql.push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .bind(i64::from(page.limit));
        if let Some(offset) = page.offset {
            sql.push(" OFFSET ").bind(int(offset));
        }
        let rows: Vec<RecordRow> = self.db.fetch_all(sql).await?;
        rows.into_iter().map(RecordRow::decode).collect()
    }

    /// How many interceptions match `filter`.
    pub async fn count(&self, filter: &Filter) -> Result<u64, StoreError> {
        let sql = where_filter("SELECT COUNT(*) AS n FROM interceptions", filter);
        let row: CountRow = self.db.fetch_one(sql).await?;
        Ok(count(row.n))
    }

    /// Calls, success rate, latency (mean, p50, p95), tokens and cost of the interceptions
    /// matching `filter`, in total and per model.
    pub async fn summary(&self, filter: &Filter) -> Result<Summary, StoreError> {
        let mut select = String::from("SELECT ");
        select.push_str(COUNTERS);
        select.push_str(
            ", CAST(AVG(latency_ms) AS DOUBLE PRECISION) AS avg_latency_ms, \
             MIN(started_at) AS first_started_at, MAX(started_at) AS last_started_at \
             FROM interceptions",
        );
        let total: SummaryRow = self.db.fetch_one(where_filter(&select, filter)).await?;
        let counters = total.counters.counters();

        let mut select = String::from("SELECT COALESCE(model_served, model_requested) AS model, ");
        select.push_str(COUNTERS);
        select.push_str(" FROM interceptions");
        let mut sql = where_filter(&select, filter);
        sql.push(" GROUP BY COALESCE(model_served, model_requested)");
        let rows: Vec<ModelSummaryRow> = self.db.fetch_all(sql).await?;
        let mut models: Vec<ModelSummary> = rows
            .into_iter()
            .map(|r| ModelSummary {
                counters: r.counters.counters(),
                model: r.model,
            })
            .collect();
        models.sort_by(|a, b| a.model.cmp(&b.model));

        let p50 = self
            .latency_percentile(filter, counters.requests, 50)
            .await?;
        let p95 = self
            .latency_percentile(filter, counters.requests, 95)
            .await?;
        let calls = counters.requests;
        Ok(Summary {
            period_start: match filter.started_after {
                Some(t) => Some(t),
                None => total.first_started_at.map(timestamp).transpose()?,
            },
            period_end: match filter.started_before {
                Some(t) => Some(t),
                None => total.last_started_at.map(timestamp).transpose()?,
            },
            total_calls: calls,
            success_rate: if calls == 0 {
                0.0
            } else {
                (calls - counters.errors) as f64 / calls as f64
            },
            avg_latency_ms: total.avg_latency_ms.unwrap_or(0.0),
            p50_latency_ms: p50,
            p95_latency_ms: p95,
            total_tokens: total_tokens(&counters.usage),
            usage: counters.usage,
            cost: counters.cost,
            models,
        })
    }

    /// Nearest-rank percentile `p` of latency among `n` matching interceptions (0 when none).
    async fn latency_percentile(&self, filter: &Filter, n: u64, p: u64) -> Result<u64, StoreError> {
        if n == 0 {
            return Ok(0);
        }
        let rank = (p * n).div_ceil(100).max(1);
        let mut sql = where_filter("SELECT latency_ms FROM interceptions", filter);
        sql.push(" ORDER BY latency_ms LIMIT 1 OFFSET ")
            .bind(int(rank - 1));
        let row: Option<LatencyRow> = self.db.fetch_optional(sql).await?;
        Ok(row.map(|r| count(r.latency_ms)).unwrap_or(0))
    }

    /// Client names seen in interceptions matching `filter` (empty names left out), sorted.
    pub async fn distinct_clients(&self, filter: &Filter) -> Result<Vec<String>, StoreError> {
        let mut sql = where_filter("SELECT DISTINCT client AS value FROM interceptions", filter);
        sql.push(" AND client <> ''");
        self.strings(sql).await
    }

    /// Models requested or served in interceptions matching `filter` (empty names left out),
    /// sorted.
    pub async fn distinct_models(&self, filter: &Filter) -> Result<Vec<String>, StoreError> {
        let mut sql = where_filter(
            "SELECT DISTINCT model_requested AS value FROM interceptions",
            filter,
        );
        sql.push(" AND model_requested <> '' UNION SELECT DISTINCT model_served AS value FROM interceptions WHERE model_served IS NOT NULL AND model_served <> ''");
        filter.push_conditions(&mut sql);
        self.strings(sql).await
    }

    /// Workspace keys of the interceptions matching `filter` (those without one left out),
    /// sorted.
    pub async fn distinct_workspaces(&self, filter: &Filter) -> Result<Vec<String>, StoreError> {
        let mut sql = where_filter(
            "SELECT DISTINCT workspace AS value FROM interceptions",
            filter,
        );
        sql.push(" AND workspace IS NOT NULL");
        self.strings(sql).await
    }

    /// How many sessions ((session id, initiator) groups) have interceptions matching `filter`.
    pub async fn count_sessions(&self, filter: &Filter) -> Result<u64, StoreError> {
        let mut sql = where_filter(
            "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM interceptions",
            filter,
        );
        sql.push(" GROUP BY session_key, COALESCE(initiator, '')) AS s");
        let row: CountRow = self.db.fetch_one(sql).await?;
        Ok(count(row.n))
    }

    async fn strings(&self, sql: Sql) -> Result<Vec<String>, StoreError> {
        let rows: Vec<TextRow> = self.db.fetch_all(sql).await?;
        let set: BTreeSet<String> = rows.into_iter().map(|r| r.value).collect();
        Ok(set.into_iter().collect())
    }

    /// Sessions: interceptions matching `filter` grouped by (session id, initiator), newest
    /// first (by first start; ties by session id, then initiator, descending). Counts and
    /// totals are over the matching interceptions of each session.
    pub async fn sessions(
        &self,
        filter: &Filter,
        page: &SessionPage,
    ) -> Result<Vec<Session>, StoreError> {
        page.validate()?;
        let mut select = String::from(
            "SELECT session_key, COALESCE(initiator, '') AS initiator_key, \
             MIN(started_at) AS started_at, MAX(started_at) AS last_active_at, \
             MAX(ended_at) AS ended_at, ",
        );
        select.push_str(&sum_int(&format!("CASE WHEN {IS_ROOT} THEN 1 ELSE 0 END")));
        select.push_str(" AS threads, ");
        select.push_str(COUNTERS);
        select.push_str(" FROM interceptions i");
        let mut sql = where_filter(&select, filter);
        sql.push(" GROUP BY session_key, COALESCE(initiator, '')");
        if let Some(after) = &page.after {
            let initiator = after.initiator.clone().unwrap_or_default();
            let mut pos = where_filter(
                "SELECT MIN(started_at) AS started_at FROM interceptions",
                filter,
            );
            pos.push(" AND session_key = ")
                .bind(&after.session_id)
                .push(" AND COALESCE(initiator, '') = ")
                .bind(&initiator);
            let started = self.db.fetch_one::<OptStartedRow>(pos).await?.started_at;
            let Some(started) = started else {
                return Err(StoreError::UnknownCursor(after.session_id.clone()));
            };
            sql.push(" HAVING (MIN(started_at) < ")
                .bind(started)
                .push(" OR (MIN(started_at) = ")
                .bind(started)
                .push(" AND (session_key < ")
                .bind(&after.session_id)
                .push(" OR (session_key = ")
                .bind(&after.session_id)
                .push(" AND COALESCE(initiator, '') < ")
                .bind(initiator)
                .push("))))");
        }
        sql.push(
            " ORDER BY MIN(started_at) DESC, session_key DESC, COALESCE(initiator, '') DESC LIMIT ",
        )
        .bind(i64::from(page.limit));
        if let Some(offset) = page.offset {
            sql.push(" OFFSET ").bind(int(offset));
        }
        let rows: Vec<SessionRow> = self.db.fetch_all(sql).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }

        // Models, providers and clients of the sessions on this page.
        let keys: BTreeSet<&str> = rows.iter().map(|r| r.session_key.as_str()).collect();
        let mut attrs_sql = where_filter(
            "SELECT DISTINCT session_key, COALESCE(initiator, '') AS initiator_key, \
             COALESCE(model_served, model_requested) AS model, provider, client FROM interceptions",
            filter,
        );
        attrs_sql
            .push(" AND session_key IN ")
            .bind_list(keys.iter().copied());
        let attrs: Vec<SessionAttrRow> = self.db.fetch_all(attrs_sql).await?;
        type Sets = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);
        let mut by_session: BTreeMap<(String, String), Sets> = BTreeMap::new();
        for a in attrs {
            let sets = by_session
                .entry((a.session_key, a.initiator_key))
                .or_default();
            if !a.model.is_empty() {
                sets.0.insert(a.model);
            }
            if let Some(p) = a.provider {
                sets.1.insert(p);
            }
            if !a.client.is_empty() {
                sets.2.insert(a.client);
            }
        }

        // The latest matching interception of each session on this page, for its prompt: the
        // rows starting at one of the page's last-activity instants, kept when the instant is
        // their own session's.
        let mut last_sql = where_filter(
            "SELECT session_key, COALESCE(initiator, '') AS initiator_key, started_at, record \
             FROM interceptions",
            filter,
        );
        let lasts: BTreeSet<i64> = rows.iter().map(|r| r.last_active_at).collect();
        last_sql
            .push(" AND session_key IN ")
            .bind_list(keys.iter().copied())
            .push(" AND started_at IN ")
            .bind_list(lasts.iter().copied())
            .push(" ORDER BY id");
        let last_rows: Vec<SessionLastRow> = self.db.fetch_all(last_sql).await?;
        let wanted: BTreeMap<(&str, &str), i64> = rows
            .iter()
            .map(|r| {
                (
                    (r.session_key.as_str(), r.initiator_key.as_str()),
                    r.last_active_at,
                )
            })
            .collect();
        let mut last_prompts: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
        for l in last_rows {
            let key = (l.session_key.as_str(), l.initiator_key.as_str());
            if wanted.get(&key) != Some(&l.started_at) {
                continue;
            }
            let rec = RecordRow { record: l.record }.decode()?;
            // Ordered by id: the last one wins ties.
            last_prompts.insert((l.session_key, l.initiator_key), rec.user_prompt);
        }

        rows.into_iter()
            .map(|r| {
                let last_prompt = last_prompts
                    .remove(&(r.session_key.clone(), r.initiator_key.clone()))
                    .flatten();
                let (models, providers, clients) = by_session
                    .remove(&(r.session_key.clone(), r.initiator_key.clone()))
                    .unwrap_or_default();
                let counters = r.counters.counters();
                Ok(Session {
                    started_at: timestamp(r.started_at)?,
                    last_active_at: timestamp(r.last_active_at)?,
                    ended_at: timestamp(r.ended_at)?,
                    interceptions: counters.requests,
                    threads: count(r.threads),
                    errors: counters.errors,
                    usage: counters.usage,
                    cost: counters.cost,
                    models: models.into_iter().collect(),
                    providers: providers.into_iter().collect(),
                    clients: clients.into_iter().collect(),
                    last_prompt,
                    initiator: Some(r.initiator_key).filter(|i| !i.is_empty()),
                    session_id: r.session_key,
                })
            })
            .collect()
    }

    /// Threads of a session, in start order (ties by id). A thread root is an interception of
    /// the session (matching `filter`, whose `session_id` is replaced by `session_id`) without a
    /// `thread_root_id`, or whose root is not stored; its calls are all interceptions pointing
    /// at it (whatever their session), restricted only by `filter.allowed_workspaces`.
    /// An unknown session gives an empty list.
    pub async fn session_threads(
        &self,
        session_id: &str,
        filter: &Filter,
        page: &ThreadPage,
    ) -> Result<Vec<Thread>, StoreError> {
        page.validate()?;
        let filter = Filter {
            session_id: Some(session_id.to_owned()),
            ..filter.clone()
        };
        let mut roots_sql = where_filter("SELECT record FROM interceptions i", &filter);
        roots_sql.push(" AND ").push(IS_ROOT);
        let cursor = page.after_id.or(page.before_id);
        if let Some(id) = cursor {
            let mut pos = where_filter("SELECT started_at FROM interceptions i", &filter);
            pos.push(" AND ").push(IS_ROOT).push(" AND id = ").bind(id);
            let Some(StartedRow { started_at }) = self.db.fetch_optional(pos).await? else {
                return Err(StoreError::UnknownCursor(id.to_string()));
            };
            let op = if page.after_id.is_some() {
                " > "
            } else {
                " < "
            };
            roots_sql
                .push(" AND (started_at")
                .push(op)
                .bind(started_at)
                .push(" OR (started_at = ")
                .bind(started_at)
                .push(" AND id")
                .push(op)
                .bind(id)
                .push("))");
        }
        let backward = page.before_id.is_some();
        roots_sql
            .push(if backward {
                " ORDER BY started_at DESC, id DESC LIMIT "
            } else {
                " ORDER BY started_at, id LIMIT "
            })
            .bind(i64::from(page.limit));
        let rows: Vec<RecordRow> = self.db.fetch_all(roots_sql).await?;
        let mut roots = rows
            .into_iter()
            .map(RecordRow::decode)
            .collect::<Result<Vec<_>, _>>()?;
        if backward {
            roots.reverse();
        }
        if roots.is_empty() {
            return Ok(Vec::new());
        }

        let mut calls_sql = Sql::new("SELECT record FROM interceptions WHERE thread_root_id IN ");
        calls_sql.bind_list(roots.iter().map(|r| r.id));
        filter.push_authorization(&mut calls_sql);
        calls_sql.push(" ORDER BY started_at, id");
        let rows: Vec<RecordRow> = self.db.fetch_all(calls_sql).await?;
        let mut calls: BTreeMap<uuid::Uuid, Vec<Interception>> = BTreeMap::new();
        for row in rows {
            let call = row.decode()?;
            if let Some(root) = call.thread_root_id {
                calls.entry(root).or_default().push(call);
            }
        }
        Ok(roots
            .into_iter()
            .map(|root| Thread {
                calls: calls.remove(&root.id).unwrap_or_default(),
                root,
            })
            .collect())
    }
}
