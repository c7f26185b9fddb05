//! Usage write-back: the record store's rollups turned into the counters status shows.
//! Cheap by construction: the store keeps rollup tables, so this reads O(objects) rows.

use std::collections::BTreeMap;

use switchyard_crds::common::UsageTotals;
use switchyard_crds::provider::ProviderType;
use switchyard_crds::workspace::{AlertCounts, ModelUsage, WorkspaceUsage};

use crate::status::{ChainCounters, Counters, PolicyCounters, WorkspaceCounters};
use crate::store::{Store, StoreError, UsageCounters};

/// Models listed per Workspace in status (the rest is in the totals and the facade).
pub const TOP_MODELS: usize = 10;

fn totals(c: &UsageCounters) -> UsageTotals {
    UsageTotals {
        requests: c.requests,
        errors: c.errors,
        input_tokens: c.usage.input_tokens,
        output_tokens: c.usage.output_tokens,
        cache_read_input_tokens: c.usage.cache_read_input_tokens,
        cache_write_input_tokens: c.usage.cache_write_input_tokens,
        input_cost: c.cost.input,
        output_cost: c.cost.output,
    }
}

fn add(into: &mut UsageTotals, c: &UsageTotals) {
    into.requests += c.requests;
    into.errors += c.errors;
    into.input_tokens += c.input_tokens;
    into.output_tokens += c.output_tokens;
    into.cache_read_input_tokens += c.cache_read_input_tokens;
    into.cache_write_input_tokens += c.cache_write_input_tokens;
    into.input_cost += c.input_cost;
    into.output_cost += c.output_cost;
}

fn provider_type(s: &str) -> Option<ProviderType> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

/// Counters for the given workspaces (keys) and every provider, backend, rule, policy and
/// chain that has usage.
pub async fn counters(store: &Store, workspaces: &[String]) -> Result<Counters, StoreError> {
    let mut out = Counters::default();
    let alerts: BTreeMap<String, crate::store::WorkspaceAlerts> = store
        .workspace_alerts(Some(workspaces))
        .await?
        .into_iter()
        .map(|a| (a.workspace.clone(), a))
        .collect();
    for ws in workspaces {
        let top = store.workspace_usage_top(ws, TOP_MODELS).await?;
        let a = alerts.get(ws);
        if top.last_request_at.is_none() && a.is_none() {
            continue;
        }
        let mut by_model: BTreeMap<String, ModelUsage> = BTreeMap::new();
        for m in &top.models {
            let e = by_model
                .entry(m.model.clone())
                .or_insert_with(|| ModelUsage {
                    provider_type: provider_type(&m.provider),
                    usage: UsageTotals::default(),
                });
            add(&mut e.usage, &totals(&m.counters));
        }
        out.workspaces.insert(
            ws.clone(),
            WorkspaceCounters {
                usage: WorkspaceUsage {
                    tokens_by_model: by_model,
                    totals: totals(&top.totals),
                },
                alerts: a
                    .map(|a| AlertCounts {
                        secrets: a.alerts.secrets,
                        pii: a.alerts.pii,
                        total: a.alerts.total,
                    })
                    .unwrap_or_default(),
                last_request_at: top.last_request_at,
            },
        );
    }
    for p in store.provider_usage(None).await? {
        out.providers.insert(
            p.provider_name.clone(),
            (totals(&p.counters), Some(p.last_request_at)),
        );
    }
    for r in store.rule_counters(None).await? {
        out.rules
            .insert(r.rule.clone(), (r.match_count, Some(r.last_matched_at)));
    }
    for p in store.policy_counters(None).await? {
        out.policies.insert(
            p.policy.clone(),
            PolicyCounters {
                matches: p.match_count,
                successes: p.success_count,
                errors: p.error_count,
                last_matched_at: Some(p.last_matched_at),
                // Filled from the circuit board (`crate::circuits::apply`).
                circuit: None,
                targets: None,
            },
        );
    }
    for c in store.chain_runs(None).await? {
        out.chains.insert(
            c.chain.clone(),
            ChainCounters {
                runs: c.runs,
                failures: c.failures,
                last_run_at: Some(c.last_run_at),
            },
        );
    }
    Ok(out)
}
