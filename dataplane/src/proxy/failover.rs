//! Failover along a route (DESIGN.md "Request path", step 5): for each target in order
//! (routeTo, then fallbacks), ask its circuit breaker, take a backend slot (`maxConcurrency`),
//! call it, retry it while the policy and the retry budget allow, and otherwise move on to the
//! next target, all before the first byte reaches the caller.
//!
//! - An open circuit with `autoDisable` takes the target out of routing: it is skipped (recorded
//!   as an attempt without a call). When every target of a route is skipped so, the route stops
//!   matching and the next route that applies takes over (a lower-priority RouterPolicy, the
//!   MuxRule, the declared model). Without `autoDisable` an open circuit fails the request at
//!   once: 503 `circuit_open` with `Retry-After`, no fallback.
//! - The gateway's own refusals (open circuit, backend queue full) are never counted by a
//!   breaker; an AffinityGroup member whose circuit is open leaves the group's rotation.
//! - Retries: only for failures that produced nothing (connect error, reset, timeout before the
//!   first byte, 429/502/503/504/529), at most `retries.attempts` per target, each paid from the
//!   policy's retry budget, after a jittered backoff that honours `Retry-After` (waiting at least
//!   that long); a `Retry-After` longer than `maxBackoff` is not waited for: the next target is
//!   tried, or the caller gets the answer with its `Retry-After`.
//! - A request body larger than `--retry-buffer-bytes` is sent at most once: no retry, no
//!   fallback after a call was made.
//! - `timeouts.total` bounds the whole request, from its arrival, across every attempt.

use std::sync::Arc;
use std::time::Instant;

use switchyard_crds::snapshot::{
    GroupMemberSnapshot, RouterPolicySnapshot, TargetKind, TargetSnapshot,
};
use switchyard_routing::route::{Route, RouteSource};
use switchyard_routing::table::RoutingTable;

use super::Handled;
use super::attempt::{Call, CallGuard, attempt};
use super::tracker::Tracker;
use crate::breaker::{CircuitState, DEFAULT_POLICY};
use crate::errors::{ApiError, ErrorKind};
use crate::limits::ConcurrencyPermit;
use crate::record::{Attempt, RouteRecord};
use crate::retry::{self, SplitMix64};
use crate::upstream::{OTHER_MODEL, Timeouts, Upstream};

/// What became of one route.
enum RouteEnd {
    Done(Result<Handled, ApiError>),
    /// Every target was out of routing (open circuits with `autoDisable`): try the next route.
    AllOpen(ApiError),
}

/// Serves the request along `routes` (see [`switchyard_routing::route::candidates`]).
pub(crate) async fn run(
    call: &Call<'_>,
    table: &Arc<RoutingTable>,
    routes: &[Route],
    body_bytes: usize,
    arrived: tokio::time::Instant,
    tracker: &mut Tracker,
) -> Result<Handled, ApiError> {
    let mut last = None;
    for route in routes {
        match run_route(call, table, route, body_bytes, arrived, tracker).await {
            RouteEnd::Done(result) => return result,
            RouteEnd::AllOpen(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(nothing_could))
}

fn nothing_could() -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        "no target of the route could take the request",
    )
}

/// The breaker label of an upstream: an AffinityGroup member has its own breaker
/// (`backend/MEMBER:model`), other targets are labelled as the route names them. The model part
/// is one the Provider/Backend declares, or `other` ([`Upstream::label_model`]): a caller's
/// invented model name never becomes a breaker, a metric label or a circuit report entry.
fn breaker_label(up: &Upstream) -> String {
    match &up.backend {
        Some(b) => member_label(b, up.label_model()),
        None => up.label.clone(),
    }
}

/// `model` must be a label model ([`Upstream::label_model`], [`member_label_model`]).
fn member_label(backend_key: &str, model: &str) -> String {
    format!(
        "backend/{}:{model}",
        switchyard_routing::table::name_of(backend_key)
    )
}

/// The label model of `model` on a group member: what [`Upstream::label_model`] gives for the
/// member once picked (a member is only picked for a model it serves, which it declares).
fn member_label_model<'a>(member: &GroupMemberSnapshot, model: &'a str) -> &'a str {
    if member.models.iter().any(|m| m == model) {
        model
    } else {
        OTHER_MODEL
    }
}

fn target_name(t: &TargetSnapshot) -> String {
    format!(
        "{}/{}",
        t.kind.as_str(),
        switchyard_routing::table::name_of(&t.key)
    )
}

async fn run_route(
    call: &Call<'_>,
    table: &Arc<RoutingTable>,
    route: &Route,
    body_bytes: usize,
    arrived: tokio::time::Instant,
    tracker: &mut Tracker,
) -> RouteEnd {
    let state = call.state;
    let snapshot = &table.snapshot;
    let policy: Option<&RouterPolicySnapshot> = match &route.source {
        RouteSource::Policy(k) => table
            .policies
            .iter()
            .find(|p| &p.snap.key == k)
            .map(|p| &p.snap),
        _ => None,
    };
    let policy_key = policy.map_or(DEFAULT_POLICY, |p| p.key.as_str());
    let retries = policy.map(|p| p.retries.clone()).unwrap_or_default();
    let budget = state
        .retry_budgets
        .budget(policy_key, retries.budget_percent, Instant::now());
    budget.deposit(Instant::now());
    let one_shot = body_bytes > state.settings.retry_buffer_bytes;
    let mut rng = SplitMix64::from_entropy();
    tracker.rec.route = Some(RouteRecord {
        source: route.source.kind().to_owned(),
        rule: route.source.key().map(str::to_owned),
        target: route
            .targets
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
    });

    let mut last_error: Option<ApiError> = None;
    let mut tried_backends: Vec<String> = Vec::new();
    // Whether any target was anything but skipped for an open circuit.
    let mut reachable = false;
    let mut called = false;
    for target in &route.targets {
        let model = target
            .model
            .clone()
            .unwrap_or_else(|| call.info.model.clone());
        let mut skipped_members = false;
        let upstream = match target.kind {
            TargetKind::Provider => Upstream::provider(snapshot, target, &model),
            TargetKind::Backend => Upstream::backend(snapshot, &target.key, target, &model),
            TargetKind::AffinityGroup => snapshot.affinity_group(&target.key).and_then(|g| {
                let session = call
                    .headers
                    .get(g.session_header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .or(call.info.session_id.as_deref());
                // Members whose circuit is open (with autoDisable) leave the rotation.
                let mut exclude = tried_backends.clone();
                for m in &g.members {
                    let label = member_label(&m.backend, member_label_model(m, &model));
                    let now = Instant::now();
                    // Only members with a breaker can be open: none is created here.
                    let open = state
                        .breakers
                        .state(policy_key, &label, now)
                        .is_some_and(|b| b.state == CircuitState::Open);
                    if open && state.breakers.breaker(policy, &label, now).auto_disable() {
                        exclude.push(m.backend.clone());
                        skipped_members = true;
                    }
                }
                let b = state
                    .balancer
                    .pick(snapshot, g, &model, session, &exclude)?;
                Upstream::backend(snapshot, &b, target, &model)
            }),
        };
        let Some(upstream) = upstream else {
            let error = if skipped_members {
                "every member serving the model has an open circuit"
            } else {
                reachable = true;
                "no usable member serves the model"
            };
            tracker.rec.attempts.push(Attempt {
                target: target.to_string(),
                backend: None,
                model: model.clone(),
                status: None,
                error: Some(error.into()),
                latency_ms: 0,
            });
            if skipped_members {
                state.metrics.refused("circuit_open");
                last_error.get_or_insert_with(|| circuit_open_error(&target.to_string(), 1));
            }
            continue;
        };
        if let Some(b) = &upstream.backend {
            tried_backends.push(b.clone());
        }
        tracker.route_header = Some(format!(
            "{}; target={}; model={}",
            route.source,
            target_name(target),
            model
        ));
        // The record names the target that answered, or else the last one tried.
        if let Some(r) = &mut tracker.rec.route {
            r.target.clone_from(&upstream.target_label);
        }
        let label = breaker_label(&upstream);
        let timeouts = Timeouts::resolve(&upstream.timeouts, policy.map(|p| &p.timeouts));
        let deadline = arrived + timeouts.total;
        let backend_key = match target.kind {
            TargetKind::Provider => None,
            _ => Some(upstream.name.clone()),
        };
        let max_concurrency = backend_key
            .as_deref()
            .and_then(|k| snapshot.backend(k))
            .and_then(|b| b.max_concurrency);
        let mut retry_no = 0u32;
        loop {
            let now = Instant::now();
            let breaker = state.breakers.breaker(policy, &label, now);
            let permit = match breaker.try_acquire(now) {
                Ok(p) => p,
                Err(rejected) => {
                    state.metrics.refused("circuit_open");
                    let secs = rejected.retry_after_secs(now);
                    tracker.rec.attempts.push(Attempt {
                        target: upstream.target_label.clone(),
                        backend: upstream.backend.clone(),
                        model: upstream.model.clone(),
                        status: None,
                        error: Some(format!(
                            "circuit {} ({label}): not called, retry in {secs} s",
                            rejected.state.as_str()
                        )),
                        latency_ms: 0,
                    });
                    let e = circuit_open_error(&label, secs);
                    if !breaker.auto_disable() {
                        // Without autoDisable an open circuit fails the request (no fallback).
                        return RouteEnd::Done(Err(e));
                    }
                    last_error = Some(e);
                    break;
                }
            };
            reachable = true;
            let slot = match (&backend_key, max_concurrency) {
                (Some(key), Some(max)) => {
                    match state
                        .concurrency
                        .acquire(key, Some(max), tokio::time::Instant::now())
                        .await
                    {
                        Ok(slot) => slot,
                        Err(saturated) => {
                            // The gateway's own refusal: the permit is dropped, not counted.
                            drop(permit);
                            state.metrics.refused(saturated.metric_label());
                            tracker.rec.attempts.push(Attempt {
                                target: upstream.target_label.clone(),
                                backend: upstream.backend.clone(),
                                model: upstream.model.clone(),
                                status: None,
                                error: Some(format!("not called: {saturated}")),
                                latency_ms: now.elapsed().as_millis() as u64,
                            });
                            last_error = Some(ApiError::from(saturated));
                            break;
                        }
                    }
                }
                _ => ConcurrencyPermit::unlimited(),
            };
            let guard = CallGuard {
                permit,
                _slot: slot,
                _in_flight: upstream.backend.as_deref().map(|b| state.balancer.start(b)),
            };
            called = true;
            match attempt(call, &upstream, timeouts, deadline, guard, tracker).await {
                Ok(handled) => return RouteEnd::Done(Ok(handled)),
                Err(f) if !f.next => return RouteEnd::Done(Err(f.error)),
                Err(f) => {
                    // A Retry-After longer than the policy's maxBackoff: not worth the wait
                    // here; the next target (or the caller, told when to come back) takes it.
                    let wait_too_long = f
                        .retry_after
                        .is_some_and(|ra| ra.as_millis() > u128::from(retries.max_backoff_ms));
                    if f.retryable && !one_shot && !wait_too_long && retry_no < retries.attempts {
                        let now = Instant::now();
                        let wait =
                            retry::backoff_for(&retries, retry_no + 1, f.retry_after, &mut rng)
                                .filter(|w| tokio::time::Instant::now() + *w < deadline);
                        if let Some(wait) = wait {
                            if budget.try_withdraw(now) {
                                retry_metric(call, &upstream, "retried");
                                retry_no += 1;
                                tokio::time::sleep(wait).await;
                                continue;
                            }
                            retry_metric(call, &upstream, "budget_exhausted");
                        }
                    }
                    last_error = Some(f.error);
                    break;
                }
            }
        }
        if one_shot && called {
            // Never sent twice: the body is over the retry buffer.
            break;
        }
    }
    let error = last_error.unwrap_or_else(nothing_could);
    if reachable {
        RouteEnd::Done(Err(error))
    } else {
        RouteEnd::AllOpen(error)
    }
}

fn circuit_open_error(label: &str, retry_after_secs: u64) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!("the circuit of {label} is open: it is not called until its cooldown has passed"),
    )
    .code("circuit_open")
    .retry_after(retry_after_secs.max(1))
}

fn retry_metric(call: &Call<'_>, up: &Upstream, outcome: &str) {
    call.state
        .metrics
        .retries
        .get_or_create(&crate::metrics::RetryLabels {
            gen_ai_provider_name: up.name.clone(),
            outcome: outcome.to_owned(),
        })
        .inc();
}
