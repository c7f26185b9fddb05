//! Desired status of every object, computed purely from the compile diagnostics, the usage
//! counters from the record store and the probe results. Writing it is elsewhere
//! (`status_writer`); keeping this pure makes every status a table test.
//!
//! Rules: `lastTransitionTime` moves only when a condition's status flips; times are whole
//! seconds (what the API server stores, so an unchanged status compares equal and causes no
//! write); reasons and messages are never empty (server-side apply would send null).

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use switchyard_crds::affinity_group::AffinityGroupStatus;
use switchyard_crds::backend::{BackendStatus, ObservedModel};
use switchyard_crds::common::UsageTotals;
use switchyard_crds::compile::{ConditionSpec, Details, Diagnostic};
use switchyard_crds::mux_rule::MuxRuleStatus;
use switchyard_crds::provider::{ModelSource, ProviderModelStatus, ProviderStatus};
use switchyard_crds::router_policy::{PolicyState, RouterPolicyStatus};
use switchyard_crds::task_chain::TaskChainStatus;
use switchyard_crds::workspace::{AlertCounts, WorkspaceStatus, WorkspaceUsage};

/// Longest condition message (the API server's limit is 32768).
pub const MAX_MESSAGE: usize = 4096;

/// Usage and counters by object key (`namespace/name`), from the record store's rollups.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Workspace usage (top models + totals), alerts and last request.
    pub workspaces: HashMap<String, WorkspaceCounters>,
    /// Provider or backend key → totals and last request.
    pub providers: HashMap<String, (UsageTotals, Option<Timestamp>)>,
    /// MuxRule key → matches and last match.
    pub rules: HashMap<String, (u64, Option<Timestamp>)>,
    /// RouterPolicy key → counters.
    pub policies: HashMap<String, PolicyCounters>,
    /// TaskChain key → runs.
    pub chains: HashMap<String, ChainCounters>,
}

/// Workspace counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkspaceCounters {
    /// Usage by model (bounded) and totals.
    pub usage: WorkspaceUsage,
    /// Alerts.
    pub alerts: AlertCounts,
    /// Last request.
    pub last_request_at: Option<Timestamp>,
}

/// RouterPolicy counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyCounters {
    /// Matched requests.
    pub matches: u64,
    /// Of those, succeeded.
    pub successes: u64,
    /// Of those, failed.
    pub errors: u64,
    /// Last match.
    pub last_matched_at: Option<Timestamp>,
    /// Circuit state of the primary target reported by data planes (`Open`, `HalfOpen`;
    /// `None` when closed). Filled by [`crate::circuits::apply`].
    pub circuit: Option<String>,
    /// Circuit state of every route target (`status.targets`), filled by
    /// [`crate::circuits::apply`]. `None`: no circuit view yet (the operator just started and
    /// not every data plane has reported), so status keeps the circuit state it shows.
    pub targets: Option<Vec<switchyard_crds::router_policy::TargetCircuit>>,
}

/// TaskChain counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChainCounters {
    /// Runs.
    pub runs: u64,
    /// Failed runs.
    pub failures: u64,
    /// Last run.
    pub last_run_at: Option<Timestamp>,
}

/// What the last probe of a Backend (or a Provider's model discovery) found.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    /// The server answered.
    pub reachable: bool,
    /// Why not, or what went wrong (never contains credentials).
    pub error: Option<String>,
    /// Models it serves.
    pub models: Vec<ObservedModel>,
    /// When.
    pub at: Timestamp,
}

/// Probe results by object key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probes {
    /// Backends.
    pub backends: HashMap<String, ProbeResult>,
    /// Providers with `discoverModels`.
    pub providers: HashMap<String, ProbeResult>,
}

/// A time truncated to whole seconds, as the API server stores it.
pub fn seconds(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_MESSAGE {
        return s.to_owned();
    }
    let mut end = MAX_MESSAGE - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Turns condition specs into metav1 Conditions, keeping `lastTransitionTime` of conditions
/// whose status did not change.
pub fn conditions(
    specs: &[ConditionSpec],
    current: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    specs
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let type_ = c.type_.as_str();
            let since = current
                .iter()
                .find(|old| old.type_ == type_ && old.status == status)
                .map_or_else(|| seconds(now), |old| old.last_transition_time.clone());
            condition(type_, status, &c.reason, &c.message, generation, since)
        })
        .collect()
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    since: Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: if reason.is_empty() {
            "Unknown".to_owned()
        } else {
            reason.to_owned()
        },
        message: if message.is_empty() {
            "-".to_owned()
        } else {
            truncate(message)
        },
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// Adds or replaces one condition (for probe-driven ones like `Reachable`), with the same
/// transition rule.
fn upsert(conds: &mut Vec<Condition>, current: &[Condition], c: Condition) {
    let since = current
        .iter()
        .find(|old| old.type_ == c.type_ && old.status == c.status)
        .map_or(c.last_transition_time.clone(), |old| {
            old.last_transition_time.clone()
        });
    let c = Condition {
        last_transition_time: since,
        ..c
    };
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        Some(slot) => *slot = c,
        None => conds.push(c),
    }
}

/// Sets `Reachable` from a new probe result, or keeps the last verdict until the next probe.
fn reachable(
    conds: &mut Vec<Condition>,
    old: &[Condition],
    d: &Diagnostic,
    probe: Option<&ProbeResult>,
    ok: &str,
) {
    let Some(p) = probe else {
        if let Some(c) = old.iter().find(|c| c.type_ == "Reachable") {
            conds.push(c.clone());
        }
        return;
    };
    let (status, reason, message) = if p.reachable {
        ("True", "Reachable", format!("{} {ok}", d.object))
    } else {
        (
            "False",
            "Unreachable",
            format!(
                "{}: {}",
                d.object,
                p.error.as_deref().unwrap_or("no answer")
            ),
        )
    };
    upsert(
        conds,
        old,
        condition(
            "Reachable",
            status,
            reason,
            &message,
            d.generation,
            seconds(p.at),
        ),
    );
}

/// Provider status.
pub fn provider(
    d: &Diagnostic,
    current: Option<&ProviderStatus>,
    spec_models: &[switchyard_crds::common::ModelSpec],
    counters: &Counters,
    probes: &Probes,
    now: Timestamp,
) -> ProviderStatus {
    let key = d.object.key();
    let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut conds = conditions(&d.conditions(), old, d.generation, now);
    let probe = probes.providers.get(&key);
    let mut models: Vec<ProviderModelStatus> = spec_models
        .iter()
        .map(|m| ProviderModelStatus {
            name: m.name.clone(),
            source: ModelSource::Declared,
            capabilities: m.capabilities.clone(),
            context_length: m.context_length,
        })
        .collect();
    if let Some(p) = probe {
        for m in &p.models {
            if !models.iter().any(|x| x.name == m.model) {
                models.push(ProviderModelStatus {
                    name: m.model.clone(),
                    source: ModelSource::Discovered,
                    capabilities: switchyard_crds::common::ModelCapabilities {
                        chat: m.can_chat,
                        completions: m.can_prompt,
                        embeddings: m.can_embed,
                        streaming: m.can_stream,
                        tools: false,
                        vision: false,
                    },
                    context_length: m.context_length,
                });
            }
        }
    }
    reachable(&mut conds, old, d, probe, "answered the model listing");
    let endpoint = match &d.details {
        Details::Provider { endpoint } => endpoint.clone(),
        _ => None,
    };
    let (usage, _) = counters.providers.get(&key).cloned().unwrap_or_default();
    ProviderStatus {
        observed_generation: d.generation,
        conditions: conds,
        endpoint,
        models,
        usage: (usage != UsageTotals::default()).then_some(usage),
        last_error: match probe {
            Some(p) => p.error.clone(),
            None => current.and_then(|c| c.last_error.clone()),
        },
        last_probe_time: probe
            .map(|p| seconds(p.at))
            .or_else(|| current.and_then(|c| c.last_probe_time.clone())),
    }
}

/// Backend status.
pub fn backend(
    d: &Diagnostic,
    current: Option<&BackendStatus>,
    counters: &Counters,
    probes: &Probes,
    now: Timestamp,
) -> BackendStatus {
    let key = d.object.key();
    let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut conds = conditions(&d.conditions(), old, d.generation, now);
    let probe = probes.backends.get(&key);
    reachable(&mut conds, old, d, probe, "answered its health probe");
    let url = match &d.details {
        Details::Backend { url } => url.clone(),
        _ => None,
    };
    let models = probe
        .map(|p| p.models.clone())
        .or_else(|| current.map(|c| c.models.clone()))
        .unwrap_or_default();
    let (usage, _) = counters.providers.get(&key).cloned().unwrap_or_default();
    BackendStatus {
        observed_generation: d.generation,
        conditions: conds,
        url,
        model_count: Some(models.len() as u32),
        models,
        error: match probe {
            Some(p) => p.error.clone(),
            None => current.and_then(|c| c.error.clone()),
        },
        last_probe_time: probe
            .map(|p| seconds(p.at))
            .or_else(|| current.and_then(|c| c.last_probe_time.clone())),
        usage: (usage != UsageTotals::default()).then_some(usage),
    }
}

/// AffinityGroup status.
pub fn affinity_group(
    d: &Diagnostic,
    current: Option<&AffinityGroupStatus>,
    now: Timestamp,
) -> AffinityGroupStatus {
    let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let (members, available_models) = match &d.details {
        Details::AffinityGroup {
            members,
            available_models,
        } => (members.clone(), available_models.clone()),
        _ => Default::default(),
    };
    AffinityGroupStatus {
        observed_generation: d.generation,
        conditions: conditions(&d.conditions(), old, d.generation, now),
        ready_members: Some(members.iter().filter(|m| m.ready).count() as u32),
        members,
        available_models,
    }
}

/// Workspace status.
pub fn workspace(
    d: &Diagnostic,
    current: Option<&WorkspaceStatus>,
    counters: &Counters,
    now: Timestamp,
) -> WorkspaceStatus {
    let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let (active, mux_rules, guardrails) = match &d.details {
        Details::Workspace {
            active,
            mux_rules,
            guardrail_summary,
        } => (*active, mux_rules.clone(), guardrail_summary.clone()),
        _ => Default::default(),
    };
    let c = counters.workspaces.get(&d.object.key());
    WorkspaceStatus {
        observed_generation: d.generation,
        conditions: conditions(&d.conditions(), old, d.generation, now),
        active,
        mux_rule_count: Some(mux_rules.len() as u32),
        mux_rules,
        guardrail_summary: (!guardrails.is_empty()).then_some(guardrails),
        usage: c.map(|c| c.usage.clone()),
        alerts: c.map(|c| c.alerts.clone()),
        last_request_at: c.and_then(|c| c.last_request_at).map(seconds),
    }
}

/// MuxRule status.
pub fn mux_rule(
    d: &Diagnostic,
    current: Option<&MuxRuleStatus>,
    counters: &Counters,
    now: Timestamp,
) -> MuxRuleStatus {
    let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let (matches, last) = counters
        .rules
        .get(&d.object.key())
        .cloned()
        .unwrap_or_default();
    MuxRuleStatus {
        observed_generation: d.generation,
        conditions: conditions(&d.conditions(), old, d.generation, now),
        target: match &d.details {
            Details::MuxRule { target } => target.clone(),
            _ => None,
        },
        match_count: matches,
        last_matched_at: last.map(seconds),
    }
}

/// RouterPolicy status. `state` is `CircuitOpen` or `HalfOpen` after the primary target's
/// merged circuit (see [`crate::circuits::policy_circuits`]), and `targets` lists every route
/// target's circuit; a disabled or broken policy routes nothing and lists none.
pub fn router_policy(
    d: &Diagnostic,
    current: Option<&RouterPolicyStatus>,
    enabled: bool,
    counters: &Counters,
    now: Timestamp,
) -> RouterPolicyStatus {
    let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let c = counters
        .policies
        .get(&d.object.key())
        .cloned()
        .unwrap_or_default();
    let routing = enabled && d.ready();
    let (circuit, targets) = match c.targets {
        Some(targets) => (c.circuit.as_deref(), targets),
        None => (
            match current.and_then(|s| s.state) {
                Some(PolicyState::CircuitOpen) => Some("Open"),
                Some(PolicyState::HalfOpen) => Some("HalfOpen"),
                _ => None,
            },
            current.map(|s| s.targets.clone()).unwrap_or_default(),
        ),
    };
    let state = if !routing {
        PolicyState::Disabled
    } else {
        match circuit {
            Some("Open") => PolicyState::CircuitOpen,
            Some("HalfOpen") => PolicyState::HalfOpen,
            _ => PolicyState::Active,
        }
    };
    let done = c.successes + c.errors;
    RouterPolicyStatus {
        observed_generation: d.generation,
        conditions: conditions(&d.conditions(), old, d.generation, now),
        state: Some(state),
        route: match &d.details {
            Details::RouterPolicy { route } => route.clone(),
            _ => None,
        },
        match_count: c.matches,
        success_count: c.successes,
        error_count: c.errors,
        // Two decimals: stable, readable, and it does not churn status on every new request.
        error_rate_percent: if done == 0 {
            0.0
        } else {
            (c.errors as f64 * 10000.0 / done as f64).round() / 100.0
        },
        last_matched_at: c.last_matched_at.map(seconds),
        targets: if routing { targets } else { Vec::new() },
    }
}

/// TaskChain status.
pub fn task_chain(
    d: &Diagnostic,
    current: Option<&TaskChainStatus>,
    counters: &Counters,
    now: Timestamp,
) -> TaskChainStatus {
    let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let c = counters
        .chains
        .get(&d.object.key())
        .cloned()
        .unwrap_or_default();
    TaskChainStatus {
        observed_generation: d.generation,
        conditions: conditions(&d.conditions(), old, d.generation, now),
        task_count: match &d.details {
            Details::TaskChain { task_count } => Some(*task_count),
            _ => None,
        },
        runs: c.runs,
        failures: c.failures,
        last_run_at: c.last_run_at.map(seconds),
    }
}

#[cfg(test)]
mod tests;
