//! The record store: interceptions in SQLite or PostgreSQL, with the same schema and queries.
//!
//! - [`Store::connect`] opens `sqlite://PATH` (created if missing; WAL, busy timeout),
//!   `sqlite::memory:` or `postgres://…` and brings the schema up to date (versioned, idempotent).
//! - [`Store::insert`] stores a batch in one transaction, idempotently by interception id, and
//!   maintains the rollups for the rows it actually inserted (see [`rollup`] for what is counted
//!   where), so status aggregation reads per-object counters, never the records.
//! - Reads for status ([`Store::workspace_usage`] and friends) and for the admin facade
//!   ([`Store::list`], [`Store::summary`], [`Store::sessions`], [`Store::session_threads`], …).
//! - [`Store::prune`] deletes old interceptions and leaves the rollups alone.
//!
//! Each query is written once, with `$n` placeholders, and runs unchanged on both backends
//! ([`sql`]).

mod filter;
mod query;
pub mod rollup;
mod schema;
mod sql;

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use switchyard_crds::record::{Interception, Outcome};

pub use filter::{
    Filter, MAX_PAGE_LIMIT, MAX_THREAD_PAGE_LIMIT, Page, SessionKey, SessionPage, ThreadPage,
};
pub use query::{ModelSummary, Session, Summary, Thread};
pub use rollup::{
    AlertCounts, ChainRuns, ModelUsage, PolicyCounters, ProviderUsage, RuleCounters, UsageCounters,
    WorkspaceAlerts, WorkspaceUsageTop,
};
pub use schema::SCHEMA_VERSION;

use rollup::{Rollups, int};
use sql::{Db, Sql};

/// How long a SQLite writer waits for the write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections per pool (SQLite serialises writers anyway; readers run alongside in WAL mode).
const MAX_CONNECTIONS: u32 = 8;
/// Rows per multi-row INSERT (31 parameters each). Larger statements were slower on SQLite.
const ROWS_PER_INSERT: usize = 25;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:` (only the scheme is shown, so
    /// a password in the URL never reaches a log).
    #[error(
        "unsupported record store URL scheme {0:?}: expected sqlite://PATH, sqlite::memory: or \
         postgres://…"
    )]
    UnsupportedUrl(String),
    /// The database failed.
    #[error("record store: {0}")]
    Database(#[from] sqlx::Error),
    /// The database holds a newer schema than this build knows.
    #[error(
        "record store schema version {found} is newer than this operator supports ({supported})"
    )]
    SchemaTooNew {
        /// Version found.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// Bad page parameters (limit out of range, two cursors at once).
    #[error("invalid page: {0}")]
    InvalidPage(String),
    /// The cursor names an interception, session or thread that does not exist or does not
    /// match the filter.
    #[error("invalid pagination cursor {0:?}")]
    UnknownCursor(String),
    /// A record could not be serialised.
    #[error("cannot encode interception {id}: {source}")]
    Encode {
        /// Interception id.
        id: uuid::Uuid,
        /// Cause.
        source: serde_json::Error,
    },
    /// A stored value could not be read back.
    #[error("record store holds an unreadable value: {0}")]
    Decode(String),
}

impl StoreError {
    /// True for errors caused by the caller's parameters (answer 400), false for failures.
    pub fn is_invalid_request(&self) -> bool {
        matches!(
            self,
            StoreError::InvalidPage(_) | StoreError::UnknownCursor(_)
        )
    }
}

/// Result of [`Store::insert`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertReport {
    /// Records stored now.
    pub inserted: usize,
    /// Records already stored (or repeated within the batch), left alone.
    pub duplicates: usize,
}

/// The record store (cheap to clone: a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    /// Opens the store and applies the schema.
    ///
    /// - `sqlite://PATH` or `sqlite:PATH` (absolute: `sqlite:///var/lib/x.db`): the file is
    ///   created if missing; WAL journal, `synchronous=NORMAL`, 30 s busy timeout. URL
    ///   parameters (`?mode=ro`, …) are honoured.
    /// - `sqlite::memory:`: a private in-memory database living as long as the store (one
    ///   connection); for tests and local runs.
    /// - `postgres://…` / `postgresql://…`: libpq-style URL; use `?options=-c%20search_path%3DX`
    ///   to place the tables in schema X.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        let db = match scheme {
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url)?;
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                if in_memory {
                    // Every connection of an in-memory database must stay open, or it is gone.
                    let pool = SqlitePoolOptions::new()
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                        .connect_with(options)
                        .await?;
                    Db::Sqlite(pool)
                } else {
                    // SQLite creates the file, not its directory (e.g. a fresh volume mount).
                    if let Some(dir) = options.get_filename().parent()
                        && !dir.as_os_str().is_empty()
                    {
                        tokio::fs::create_dir_all(dir)
                            .await
                            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
                    }
                    let options = options
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT);
                    let pool = SqlitePoolOptions::new()
                        .max_connections(MAX_CONNECTIONS)
                        .connect_with(options)
                        .await?;
                    Db::Sqlite(pool)
                }
            }
            "postgres" | "postgresql" => {
                let options = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(options)
                    .await?;
                Db::Postgres(pool)
            }
            other => return Err(StoreError::UnsupportedUrl(other.to_owned())),
        };
        schema::apply(&db).await?;
        Ok(Store { db })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.db.dialect() {
            sql::Dialect::Sqlite => "sqlite",
            sql::Dialect::Postgres => "postgres",
        }
    }

    /// The schema version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        #[derive(sqlx::FromRow)]
        struct V {
            version: Option<i64>,
        }
        let v: V = self
            .db
            .fetch_one(Sql::new(
                "SELECT MAX(version) AS version FROM switchyard_schema",
            ))
            .await?;
        Ok(v.version.unwrap_or(0))
    }

    /// Closes the connections (waits for queries in flight).
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// Stores a batch in one transaction: records whose id is already stored (or repeated in the
    /// batch) are skipped, and the rollups grow by the records actually inserted, so a re-sent
    /// batch changes nothing.
    pub async fn insert(&self, batch: &[Interception]) -> Result<InsertReport, StoreError> {
        // Unique and sorted by id: concurrent inserts then lock in the same order.
        let mut unique: BTreeMap<uuid::Uuid, &Interception> = BTreeMap::new();
        for rec in batch {
            unique.entry(rec.id).or_insert(rec);
        }
        let unique: Vec<&Interception> = unique.into_values().collect();
        let mut tx = self.db.begin().await?;
        let mut inserted: Vec<&Interception> = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(ROWS_PER_INSERT) {
            let mut sql = Sql::new(INSERT_INTERCEPTIONS);
            for (i, rec) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                bind_record(&mut sql, rec)?;
                sql.push(")");
            }
            sql.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
            let ids: Vec<IdRow> = tx.fetch_all(sql).await?;
            let ids: HashSet<uuid::Uuid> = ids.into_iter().map(|r| r.id).collect();
            inserted.extend(chunk.iter().filter(|r| ids.contains(&r.id)));
        }
        Rollups::of(inserted.iter().copied()).apply(&mut tx).await?;
        tx.commit().await?;
        Ok(InsertReport {
            inserted: inserted.len(),
            duplicates: batch.len() - inserted.len(),
        })
    }

    /// Deletes the interceptions that started before `older_than`; returns how many. Rollups
    /// keep counting them.
    pub async fn prune(&self, older_than: jiff::Timestamp) -> Result<u64, StoreError> {
        let mut sql = Sql::new("DELETE FROM interceptions WHERE started_at < ");
        sql.bind(older_than.as_microsecond());
        Ok(self.db.execute(sql).await?)
    }
}

#[derive(sqlx::FromRow)]
struct IdRow {
    id: uuid::Uuid,
}

const INSERT_INTERCEPTIONS: &str = "INSERT INTO interceptions (id, request_id, started_at, \
    ended_at, workspace, initiator, client, session_id, session_key, provider, provider_name, \
    model_requested, model_served, route_source, route_rule, route_target, status, outcome, \
    stream, latency_ms, ttft_ms, input_tokens, output_tokens, cache_read_input_tokens, \
    cache_write_input_tokens, input_cost, output_cost, chain, thread_root_id, has_alerts, record) \
    VALUES ";

fn bind_record(sql: &mut Sql, rec: &Interception) -> Result<(), StoreError> {
    let json =
        serde_json::to_string(rec).map_err(|source| StoreError::Encode { id: rec.id, source })?;
    let session_key = rec.session_id.clone().unwrap_or_else(|| rec.id.to_string());
    let route = rec.route.as_ref();
    // The token and cost columns are what sums over records add up (a chain run's totals stay
    // in its record but are counted by its calls).
    let (usage, cost) = rec.own_usage();
    sql.bind(rec.id)
        .push(", ")
        .bind(&rec.request_id)
        .push(", ")
        .bind(rec.started_at.as_microsecond())
        .push(", ")
        .bind(rec.ended_at.as_microsecond())
        .push(", ")
        .bind(rec.workspace.clone())
        .push(", ")
        .bind(rec.initiator.clone())
        .push(", ")
        .bind(&rec.client)
        .push(", ")
        .bind(rec.session_id.clone())
        .push(", ")
        .bind(session_key)
        .push(", ")
        .bind(rec.provider.clone())
        .push(", ")
        .bind(rec.provider_name.clone())
        .push(", ")
        .bind(&rec.model_requested)
        .push(", ")
        .bind(rec.model_served.clone())
        .push(", ")
        .bind(route.map(|r| r.source.clone()))
        .push(", ")
        .bind(route.and_then(|r| r.rule.clone()))
        .push(", ")
        .bind(route.map(|r| r.target.clone()))
        .push(", ")
        .bind(i64::from(rec.status))
        .push(", ")
        .bind(outcome_name(rec.outcome))
        .push(", ")
        .bind(rec.stream)
        .push(", ")
        .bind(int(rec.latency_ms))
        .push(", ")
        .bind(rec.ttft_ms.map(int))
        .push(", ")
        .bind(int(usage.input_tokens))
        .push(", ")
        .bind(int(usage.output_tokens))
        .push(", ")
        .bind(int(usage.cache_read_input_tokens))
        .push(", ")
        .bind(int(usage.cache_write_input_tokens))
        .push(", ")
        .bind(cost.input)
        .push(", ")
        .bind(cost.output)
        .push(", ")
        .bind(rec.chain.clone())
        .push(", ")
        .bind(rec.thread_root_id)
        .push(", ")
        .bind(!rec.alerts.is_empty())
        .push(", ")
        .bind(json);
    Ok(())
}

/// The `outcome` column: the wire name.
pub(crate) fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::UpstreamError => "upstream_error",
        Outcome::Rejected => "rejected",
        Outcome::GatewayError => "gateway_error",
        Outcome::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_match_the_wire_names() {
        for o in [
            Outcome::Success,
            Outcome::UpstreamError,
            Outcome::Rejected,
            Outcome::GatewayError,
            Outcome::Cancelled,
        ] {
            assert_eq!(
                serde_json::to_value(o).ok(),
                Some(serde_json::json!(outcome_name(o)))
            );
        }
    }
}
