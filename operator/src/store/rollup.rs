//! Rollups: per-object counters maintained incrementally, in the insert transaction, for the
//! records actually inserted, so status aggregation reads O(objects) rows, never the records.
//!
//! Attribution rules (the naive recomputation in `tests/store.rs` spells them out again):
//! - an *error* is any outcome other than `success` (upstream error, rejected, gateway error,
//!   cancelled);
//! - usage by model is keyed by (workspace, model, provider type), where model is
//!   `model_served`, or `model_requested` when nothing served the request; a missing workspace
//!   or provider type is `''`;
//! - alerts count findings (one record may carry several), per workspace (`''` for none);
//! - provider usage is keyed by `provider_name` (a provider or backend key); records without
//!   one are not counted there;
//! - MuxRule counters count records with `route.source == "muxrule"` and a rule; RouterPolicy
//!   counters those with `route.source == "policy"` (success = outcome success, error = the
//!   rest);
//! - a chain run is a record with `chain` set and no `thread_root_id` (calls made inside the
//!   run point at it and are not runs); a failure is a run whose outcome is not success; a run
//!   counts as a request but not its tokens and cost (the total of its calls, which count
//!   them: `Interception::own_usage`);
//! - every `last_*_at` is the latest `started_at`.

use std::collections::BTreeMap;

use serde::Serialize;
use switchyard_crds::record::{Category, Cost, Interception, Outcome};
use switchyard_crds::usage::Usage;

use super::sql::{Row, Sql, Tx, sum_int, sum_real};
use super::{Store, StoreError};

/// Requests, errors, tokens and cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UsageCounters {
    /// Requests.
    pub requests: u64,
    /// Requests whose outcome was not success.
    pub errors: u64,
    /// Token counts.
    pub usage: Usage,
    /// Cost in USD.
    pub cost: Cost,
}

impl UsageCounters {
    /// All tokens: plain input, cache reads, cache writes and output.
    pub fn total_tokens(&self) -> u64 {
        total_tokens(&self.usage)
    }

    fn add(&mut self, rec: &Interception) {
        self.requests += 1;
        if rec.outcome != Outcome::Success {
            self.errors += 1;
        }
        let (usage, cost) = rec.own_usage();
        self.usage.input_tokens += usage.input_tokens;
        self.usage.output_tokens += usage.output_tokens;
        self.usage.cache_read_input_tokens += usage.cache_read_input_tokens;
        self.usage.cache_write_input_tokens += usage.cache_write_input_tokens;
        self.cost.input += cost.input;
        self.cost.output += cost.output;
    }
}

pub(crate) fn total_tokens(u: &Usage) -> u64 {
    u.input_tokens
        .saturating_add(u.output_tokens)
        .saturating_add(u.cache_read_input_tokens)
        .saturating_add(u.cache_write_input_tokens)
}

/// Usage of one model in one workspace, through one provider type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelUsage {
    /// Workspace key; `""` for requests without a workspace.
    pub workspace: String,
    /// Model served, or requested when nothing served it.
    pub model: String,
    /// Provider type; `""` when no provider was reached.
    pub provider: String,
    /// Counters.
    pub counters: UsageCounters,
    /// Latest request start.
    pub last_request_at: jiff::Timestamp,
}

/// A workspace's top models by tokens plus the totals over all of its models.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkspaceUsageTop {
    /// Workspace key.
    pub workspace: String,
    /// At most `n` rows, most tokens first (ties by model, then provider).
    pub models: Vec<ModelUsage>,
    /// Number of (model, provider) rows in total.
    pub model_count: u64,
    /// Sums over all models.
    pub totals: UsageCounters,
    /// Latest request start; `None` when the workspace has no usage.
    pub last_request_at: Option<jiff::Timestamp>,
}

/// Guardrail findings by category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlertCounts {
    /// Secrets findings.
    pub secrets: u64,
    /// PII findings.
    pub pii: u64,
    /// All findings.
    pub total: u64,
}

/// Guardrail findings of one workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceAlerts {
    /// Workspace key; `""` for requests without a workspace.
    pub workspace: String,
    /// Counts.
    pub alerts: AlertCounts,
    /// Start of the latest request with a finding.
    pub last_alert_at: jiff::Timestamp,
}

/// Usage through one provider or backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderUsage {
    /// Provider or backend key (`ns/name`).
    pub provider_name: String,
    /// Counters.
    pub counters: UsageCounters,
    /// Latest request start.
    pub last_request_at: jiff::Timestamp,
}

/// Matches of one MuxRule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCounters {
    /// MuxRule key (`ns/name`).
    pub rule: String,
    /// Requests routed by it.
    pub match_count: u64,
    /// Latest of them.
    pub last_matched_at: jiff::Timestamp,
}

/// Matches of one RouterPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyCounters {
    /// RouterPolicy key (`ns/name`).
    pub policy: String,
    /// Requests routed by it.
    pub match_count: u64,
    /// Of which succeeded.
    pub success_count: u64,
    /// Of which did not.
    pub error_count: u64,
    /// Latest of them.
    pub last_matched_at: jiff::Timestamp,
}

/// Runs of one TaskChain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainRuns {
    /// TaskChain key (`ns/name`).
    pub chain: String,
    /// Runs.
    pub runs: u64,
    /// Runs that did not succeed.
    pub failures: u64,
    /// Start of the latest run.
    pub last_run_at: jiff::Timestamp,
}

/// Counters with the latest start, as accumulated for one batch.
#[derive(Debug, Default)]
struct Delta<T> {
    value: T,
    last: i64,
}

/// The entry of `key`, created empty, with its latest start moved to `at`.
fn touch<K: Ord, T: Default>(map: &mut BTreeMap<K, Delta<T>>, key: K, at: i64) -> &mut T {
    let d = map.entry(key).or_insert_with(|| Delta {
        value: T::default(),
        last: i64::MIN,
    });
    d.last = d.last.max(at);
    &mut d.value
}

#[derive(Debug, Default, Clone, Copy)]
struct PolicyDelta {
    matches: u64,
    successes: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct ChainDelta {
    runs: u64,
    failures: u64,
}

/// The rollup increments of one batch, keyed and sorted (so concurrent transactions lock rows in
/// the same order and cannot deadlock).
#[derive(Debug, Default)]
pub(crate) struct Rollups {
    models: BTreeMap<(String, String, String), Delta<UsageCounters>>,
    alerts: BTreeMap<String, Delta<AlertCounts>>,
    providers: BTreeMap<String, Delta<UsageCounters>>,
    rules: BTreeMap<String, Delta<u64>>,
    policies: BTreeMap<String, Delta<PolicyDelta>>,
    chains: BTreeMap<String, Delta<ChainDelta>>,
}

impl Rollups {
    pub(crate) fn of<'a>(records: impl IntoIterator<Item = &'a Interception>) -> Self {
        let mut r = Rollups::default();
        for rec in records {
            let at = rec.started_at.as_microsecond();
            let workspace = rec.workspace.clone().unwrap_or_default();
            let model = rec
                .model_served
                .clone()
                .unwrap_or_else(|| rec.model_requested.clone());
            let provider = rec.provider.clone().unwrap_or_default();
            touch(&mut r.models, (workspace.clone(), model, provider), at).add(rec);
            if !rec.alerts.is_empty() {
                let a = touch(&mut r.alerts, workspace, at);
                for alert in &rec.alerts {
                    match alert.category {
                        Category::Secrets => a.secrets += 1,
                        Category::Pii => a.pii += 1,
                    }
                    a.total += 1;
                }
            }
            if let Some(name) = &rec.provider_name {
                touch(&mut r.providers, name.clone(), at).add(rec);
            }
            if let Some(route) = &rec.route
                && let Some(rule) = &route.rule
            {
                match route.source.as_str() {
                    "muxrule" => *touch(&mut r.rules, rule.clone(), at) += 1,
                    "policy" => {
                        let p = touch(&mut r.policies, rule.clone(), at);
                        p.matches += 1;
                        if rec.outcome == Outcome::Success {
                            p.successes += 1;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(chain) = &rec.chain
                && rec.thread_root_id.is_none()
            {
                let c = touch(&mut r.chains, chain.clone(), at);
                c.runs += 1;
                if rec.outcome != Outcome::Success {
                    c.failures += 1;
                }
            }
        }
        r
    }

    /// Adds the increments to the rollup tables, table by table in a fixed order, keys sorted.
    pub(crate) async fn apply(&self, tx: &mut Tx) -> Result<(), StoreError> {
        for ((workspace, model, provider), d) in &self.models {
            let mut sql = Sql::new(
                "INSERT INTO usage_by_model (workspace, model, provider, requests, errors, \
                 input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens, \
                 input_cost, output_cost, last_request_at) VALUES (",
            );
            sql.bind(workspace)
                .push(", ")
                .bind(model)
                .push(", ")
                .bind(provider)
                .push(", ");
            bind_counters(&mut sql, &d.value);
            sql.push(", ")
                .bind(d.last)
                .push(") ON CONFLICT (workspace, model, provider) DO UPDATE SET ");
            push_counter_updates(&mut sql, "usage_by_model");
            tx.execute(sql).await?;
        }
        for (workspace, d) in &self.alerts {
            let mut sql = Sql::new(
                "INSERT INTO alerts_by_workspace (workspace, secrets, pii, total, last_alert_at) VALUES (",
            );
            sql.bind(workspace)
                .push(", ")
                .bind(int(d.value.secrets))
                .push(", ")
                .bind(int(d.value.pii))
                .push(", ")
                .bind(int(d.value.total))
                .push(", ")
                .bind(d.last)
                .push(
                    ") ON CONFLICT (workspace) DO UPDATE SET \
                     secrets = alerts_by_workspace.secrets + excluded.secrets, \
                     pii = alerts_by_workspace.pii + excluded.pii, \
                     total = alerts_by_workspace.total + excluded.total, ",
                )
                .push(&latest("alerts_by_workspace", "last_alert_at"));
            tx.execute(sql).await?;
        }
        for (name, d) in &self.providers {
            let mut sql = Sql::new(
                "INSERT INTO usage_by_provider (provider_name, requests, errors, \
                 input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens, \
                 input_cost, output_cost, last_request_at) VALUES (",
            );
            sql.bind(name).push(", ");
            bind_counters(&mut sql, &d.value);
            sql.push(", ")
                .bind(d.last)
                .push(") ON CONFLICT (provider_name) DO UPDATE SET ");
            push_counter_updates(&mut sql, "usage_by_provider");
            tx.execute(sql).await?;
        }
        for (rule, d) in &self.rules {
            let mut sql = Sql::new(
                "INSERT INTO mux_rule_counters (rule, match_count, last_matched_at) VALUES (",
            );
            sql.bind(rule)
                .push(", ")
                .bind(int(d.value))
                .push(", ")
                .bind(d.last)
                .push(
                    ") ON CONFLICT (rule) DO UPDATE SET \
                     match_count = mux_rule_counters.match_count + excluded.match_count, ",
                )
                .push(&latest("mux_rule_counters", "last_matched_at"));
            tx.execute(sql).await?;
        }
        for (policy, d) in &self.policies {
            let mut sql = Sql::new(
                "INSERT INTO policy_counters (policy, match_count, success_count, error_count, \
                 last_matched_at) VALUES (",
            );
            sql.bind(policy)
                .push(", ")
                .bind(int(d.value.matches))
                .push(", ")
                .bind(int(d.value.successes))
                .push(", ")
                .bind(int(d.value.matches - d.value.successes))
                .push(", ")
                .bind(d.last)
                .push(
                    ") ON CONFLICT (policy) DO UPDATE SET \
                     match_count = policy_counters.match_count + excluded.match_count, \
                     success_count = policy_counters.success_count + excluded.success_count, \
                     error_count = policy_counters.error_count + excluded.error_count, ",
                )
                .push(&latest("policy_counters", "last_matched_at"));
            tx.execute(sql).await?;
        }
        for (chain, d) in &self.chains {
            let mut sql =
                Sql::new("INSERT INTO chain_runs (chain, runs, failures, last_run_at) VALUES (");
            sql.bind(chain)
                .push(", ")
                .bind(int(d.value.runs))
                .push(", ")
                .bind(int(d.value.failures))
                .push(", ")
                .bind(d.last)
                .push(
                    ") ON CONFLICT (chain) DO UPDATE SET \
                     runs = chain_runs.runs + excluded.runs, \
                     failures = chain_runs.failures + excluded.failures, ",
                )
                .push(&latest("chain_runs", "last_run_at"));
            tx.execute(sql).await?;
        }
        Ok(())
    }
}

/// `col = CASE WHEN excluded.col > t.col THEN excluded.col ELSE t.col END` (no GREATEST/max()
/// that would differ between the dialects).
fn latest(table: &str, col: &str) -> String {
    format!(
        "{col} = CASE WHEN excluded.{col} > {table}.{col} THEN excluded.{col} ELSE {table}.{col} END"
    )
}

const COUNTER_COLUMNS: [&str; 8] = [
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "input_cost",
    "output_cost",
];

fn bind_counters(sql: &mut Sql, c: &UsageCounters) {
    sql.bind(int(c.requests))
        .push(", ")
        .bind(int(c.errors))
        .push(", ")
        .bind(int(c.usage.input_tokens))
        .push(", ")
        .bind(int(c.usage.output_tokens))
        .push(", ")
        .bind(int(c.usage.cache_read_input_tokens))
        .push(", ")
        .bind(int(c.usage.cache_write_input_tokens))
        .push(", ")
        .bind(c.cost.input)
        .push(", ")
        .bind(c.cost.output);
}

fn push_counter_updates(sql: &mut Sql, table: &str) {
    for col in COUNTER_COLUMNS {
        sql.push(&format!("{col} = {table}.{col} + excluded.{col}, "));
    }
    sql.push(&latest(table, "last_request_at"));
}

/// A count as stored (BIGINT).
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored count.
pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn timestamp(micros: i64) -> Result<jiff::Timestamp, StoreError> {
    jiff::Timestamp::from_microsecond(micros)
        .map_err(|e| StoreError::Decode(format!("timestamp {micros}: {e}")))
}

/// The counter columns of `usage_by_model` / `usage_by_provider`, as read back.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CounterRow {
    pub(crate) requests: i64,
    pub(crate) errors: i64,
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
    pub(crate) cache_read_input_tokens: i64,
    pub(crate) cache_write_input_tokens: i64,
    pub(crate) input_cost: f64,
    pub(crate) output_cost: f64,
}

impl CounterRow {
    pub(crate) fn counters(&self) -> UsageCounters {
        UsageCounters {
            requests: count(self.requests),
            errors: count(self.errors),
            usage: Usage {
                input_tokens: count(self.input_tokens),
                output_tokens: count(self.output_tokens),
                cache_read_input_tokens: count(self.cache_read_input_tokens),
                cache_write_input_tokens: count(self.cache_write_input_tokens),
            },
            cost: Cost {
                input: self.input_cost,
                output: self.output_cost,
            },
        }
    }

    /// `SUM(...)` of every counter column, named like the columns.
    pub(crate) fn sums() -> String {
        COUNTER_COLUMNS
            .iter()
            .map(|c| {
                if c.ends_with("_cost") {
                    format!("{} AS {c}", sum_real(c))
                } else {
                    format!("{} AS {c}", sum_int(c))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Largest number of keys bound in one `IN (…)` list.
const KEYS_PER_QUERY: usize = 500;

#[derive(sqlx::FromRow)]
struct ModelUsageRow {
    workspace: String,
    model: String,
    provider: String,
    #[sqlx(flatten)]
    counters: CounterRow,
    last_request_at: i64,
}

impl ModelUsageRow {
    const SELECT: &str = "SELECT workspace, model, provider, requests, errors, input_tokens, \
        output_tokens, cache_read_input_tokens, cache_write_input_tokens, input_cost, \
        output_cost, last_request_at FROM usage_by_model";

    fn decode(self) -> Result<ModelUsage, StoreError> {
        Ok(ModelUsage {
            counters: self.counters.counters(),
            last_request_at: timestamp(self.last_request_at)?,
            workspace: self.workspace,
            model: self.model,
            provider: self.provider,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    workspace: String,
    secrets: i64,
    pii: i64,
    total: i64,
    last_alert_at: i64,
}

#[derive(sqlx::FromRow)]
struct ProviderRow {
    provider_name: String,
    #[sqlx(flatten)]
    counters: CounterRow,
    last_request_at: i64,
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    rule: String,
    match_count: i64,
    last_matched_at: i64,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    policy: String,
    match_count: i64,
    success_count: i64,
    error_count: i64,
    last_matched_at: i64,
}

#[derive(sqlx::FromRow)]
struct ChainRow {
    chain: String,
    runs: i64,
    failures: i64,
    last_run_at: i64,
}

#[derive(sqlx::FromRow)]
struct TotalsRow {
    row_count: i64,
    #[sqlx(flatten)]
    counters: CounterRow,
    last_request_at: Option<i64>,
}

impl Store {
    /// Rows of `select` (a `SELECT … FROM table` without WHERE), all of them or those whose
    /// `column` is one of `keys`.
    async fn keyed<T: Row>(
        &self,
        select: &str,
        column: &str,
        keys: Option<&[String]>,
    ) -> Result<Vec<T>, StoreError> {
        let Some(keys) = keys else {
            return Ok(self.db.fetch_all(Sql::new(select)).await?);
        };
        let mut rows = Vec::new();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let mut sql = Sql::new(select);
            sql.push(" WHERE ")
                .push(column)
                .push(" IN ")
                .bind_list(chunk.iter());
            rows.extend(self.db.fetch_all::<T>(sql).await?);
        }
        Ok(rows)
    }

    /// Usage per (workspace, model, provider type), for all workspaces or those in `workspaces`;
    /// sorted by workspace, model, provider.
    pub async fn workspace_usage(
        &self,
        workspaces: Option<&[String]>,
    ) -> Result<Vec<ModelUsage>, StoreError> {
        let rows: Vec<ModelUsageRow> = self
            .keyed(ModelUsageRow::SELECT, "workspace", workspaces)
            .await?;
        let mut out = rows
            .into_iter()
            .map(ModelUsageRow::decode)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| {
            (&a.workspace, &a.model, &a.provider).cmp(&(&b.workspace, &b.model, &b.provider))
        });
        Ok(out)
    }

    /// The `n` models of `workspace` with the most tokens, plus totals over all its models (for a
    /// status that must stay bounded in size).
    pub async fn workspace_usage_top(
        &self,
        workspace: &str,
        n: usize,
    ) -> Result<WorkspaceUsageTop, StoreError> {
        let mut sql = Sql::new(ModelUsageRow::SELECT);
        sql.push(" WHERE workspace = ")
            .bind(workspace)
            .push(
                " ORDER BY (input_tokens + output_tokens + cache_read_input_tokens \
                 + cache_write_input_tokens) DESC, model, provider LIMIT ",
            )
            .bind(int(n as u64));
        let rows: Vec<ModelUsageRow> = self.db.fetch_all(sql).await?;
        let models = rows
            .into_iter()
            .map(ModelUsageRow::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let mut sql = Sql::new("SELECT COUNT(*) AS row_count, ");
        sql.push(&CounterRow::sums())
            .push(
                ", MAX(last_request_at) AS last_request_at FROM usage_by_model WHERE workspace = ",
            )
            .bind(workspace);
        let totals: TotalsRow = self.db.fetch_one(sql).await?;
        Ok(WorkspaceUsageTop {
            workspace: workspace.to_owned(),
            models,
            model_count: count(totals.row_count),
            totals: totals.counters.counters(),
            last_request_at: totals.last_request_at.map(timestamp).transpose()?,
        })
    }

    /// Alert counts per workspace, for all workspaces or those in `workspaces`; sorted.
    pub async fn workspace_alerts(
        &self,
        workspaces: Option<&[String]>,
    ) -> Result<Vec<WorkspaceAlerts>, StoreError> {
        let rows: Vec<AlertRow> = self
            .keyed(
                "SELECT workspace, secrets, pii, total, last_alert_at FROM alerts_by_workspace",
                "workspace",
                workspaces,
            )
            .await?;
        let mut out = rows
            .into_iter()
            .map(|r| {
                Ok(WorkspaceAlerts {
                    alerts: AlertCounts {
                        secrets: count(r.secrets),
                        pii: count(r.pii),
                        total: count(r.total),
                    },
                    last_alert_at: timestamp(r.last_alert_at)?,
                    workspace: r.workspace,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.workspace.cmp(&b.workspace));
        Ok(out)
    }

    /// Usage per provider or backend key, for all or those in `names`; sorted.
    pub async fn provider_usage(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<ProviderUsage>, StoreError> {
        let rows: Vec<ProviderRow> = self
            .keyed(
                "SELECT provider_name, requests, errors, input_tokens, output_tokens, \
                 cache_read_input_tokens, cache_write_input_tokens, input_cost, output_cost, \
                 last_request_at FROM usage_by_provider",
                "provider_name",
                names,
            )
            .await?;
        let mut out = rows
            .into_iter()
            .map(|r| {
                Ok(ProviderUsage {
                    counters: r.counters.counters(),
                    last_request_at: timestamp(r.last_request_at)?,
                    provider_name: r.provider_name,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.provider_name.cmp(&b.provider_name));
        Ok(out)
    }

    /// Match counters per MuxRule key, for all or those in `rules`; sorted.
    pub async fn rule_counters(
        &self,
        rules: Option<&[String]>,
    ) -> Result<Vec<RuleCounters>, StoreError> {
        let rows: Vec<RuleRow> = self
            .keyed(
                "SELECT rule, match_count, last_matched_at FROM mux_rule_counters",
                "rule",
                rules,
            )
            .await?;
        let mut out = rows
            .into_iter()
            .map(|r| {
                Ok(RuleCounters {
                    match_count: count(r.match_count),
                    last_matched_at: timestamp(r.last_matched_at)?,
                    rule: r.rule,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.rule.cmp(&b.rule));
        Ok(out)
    }

    /// Match counters per RouterPolicy key, for all or those in `policies`; sorted.
    pub async fn policy_counters(
        &self,
        policies: Option<&[String]>,
    ) -> Result<Vec<PolicyCounters>, StoreError> {
        let rows: Vec<PolicyRow> = self
            .keyed(
                "SELECT policy, match_count, success_count, error_count, last_matched_at \
                 FROM policy_counters",
                "policy",
                policies,
            )
            .await?;
        let mut out = rows
            .into_iter()
            .map(|r| {
                Ok(PolicyCounters {
                    match_count: count(r.match_count),
                    success_count: count(r.success_count),
                    error_count: count(r.error_count),
                    last_matched_at: timestamp(r.last_matched_at)?,
                    policy: r.policy,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.policy.cmp(&b.policy));
        Ok(out)
    }

    /// Run counters per TaskChain key, for all or those in `chains`; sorted.
    pub async fn chain_runs(
        &self,
        chains: Option<&[String]>,
    ) -> Result<Vec<ChainRuns>, StoreError> {
        let rows: Vec<ChainRow> = self
            .keyed(
                "SELECT chain, runs, failures, last_run_at FROM chain_runs",
                "chain",
                chains,
            )
            .await?;
        let mut out = rows
            .into_iter()
            .map(|r| {
                Ok(ChainRuns {
                    runs: count(r.runs),
                    failures: count(r.failures),
                    last_run_at: timestamp(r.last_run_at)?,
                    chain: r.chain,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.chain.cmp(&b.chain));
        Ok(out)
    }
}
