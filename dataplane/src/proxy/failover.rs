//! Failover along a route (docs/architecture.md, "The request path"): for each target in order
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
use std::time::{Duration, Instant};

use switchyard_crds::snapshot::{
    GroupMemberSnapshot, RetriesSnapshot, RouterPolicySnapshot, TargetKind, TargetSnapshot,
};
use switchyard_routing::route::{Route, RouteSource};
use switchyard_routing::table::RoutingTable;

use super::Handled;
use super::attempt::{Failed, attempt};
use super::call::{Call, CallGuard};
use super::tracker::Tracker;
use crate::breaker::{CircuitState, DEFAULT_POLICY, Permit};
use crate::errors::{ApiError, ErrorKind};
use crate::limits::ConcurrencyPermit;
use crate::retry::{self, RetryBudget, SplitMix64};
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

/// What became of one target of a route.
enum TargetEnd {
    /// The request is answered, or failed for good: the route is done.
    Done(Result<Handled, ApiError>),
    /// The target could not serve the request (why): the next one may.
    Next(ApiError),
}

/// A call the target's breaker refused.
struct OpenCircuit {
    error: ApiError,
    /// The breaker's `autoDisable`: the target is out of routing, the next one is tried.
    /// Without it an open circuit fails the request.
    auto_disable: bool,
}

/// What the targets of a route came to so far.
#[derive(Default)]
struct Progress {
    last_error: Option<ApiError>,
    /// Backends already picked (an AffinityGroup does not pick them again).
    tried_backends: Vec<String>,
    /// Whether any target was anything but skipped for an open circuit.
    reachable: bool,
    /// Whether any target was called.
    called: bool,
}

/// One route being served: its policy, retry settings and budget.
struct RouteRun<'c, 'a> {
    call: &'c Call<'a>,
    table: &'c RoutingTable,
    policy: Option<&'c RouterPolicySnapshot>,
    policy_key: &'c str,
    retries: RetriesSnapshot,
    budget: Arc<RetryBudget>,
    /// The body is over the retry buffer: it is never sent twice.
    one_shot: bool,
    arrived: tokio::time::Instant,
}

async fn run_route(
    call: &Call<'_>,
    table: &Arc<RoutingTable>,
    route: &Route,
    body_bytes: usize,
    arrived: tokio::time::Instant,
    tracker: &mut Tracker,
) -> RouteEnd {
    let run = RouteRun::new(call, table, route, body_bytes, arrived);
    let mut rng = SplitMix64::from_entropy();
    tracker.routed(route);
    let mut progress = Progress::default();
    for target in &route.targets {
        let model = target
            .model
            .clone()
            .unwrap_or_else(|| call.info.model.clone());
        let Some(upstream) = run.upstream(target, &model, &mut progress, tracker) else {
            continue;
        };
        if let Some(b) = &upstream.backend {
            progress.tried_backends.push(b.clone());
        }
        tracker.trying(
            &upstream,
            format!(
                "{}; target={}; model={}",
                route.source,
                target_name(target),
                model
            ),
        );
        match run
            .call_target(target, &upstream, &mut progress, &mut rng, tracker)
            .await
        {
            TargetEnd::Done(result) => return RouteEnd::Done(result),
            TargetEnd::Next(e) => progress.last_error = Some(e),
        }
        if run.one_shot && progress.called {
            // Never sent twice: the body is over the retry buffer.
            break;
        }
    }
    let error = progress.last_error.unwrap_or_else(nothing_could);
    if progress.reachable {
        RouteEnd::Done(Err(error))
    } else {
        RouteEnd::AllOpen(error)
    }
}

impl<'c, 'a> RouteRun<'c, 'a> {
    fn new(
        call: &'c Call<'a>,
        table: &'c RoutingTable,
        route: &'c Route,
        body_bytes: usize,
        arrived: tokio::time::Instant,
    ) -> Self {
        let state = call.state;
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
        Self {
            call,
            table,
            policy,
            policy_key,
            retries,
            budget,
            one_shot: body_bytes > state.settings.retry_buffer_bytes,
            arrived,
        }
    }

    /// The upstream `target` stands for with `model`; `None` when it has none (recorded as an
    /// attempt without a call).
    fn upstream(
        &self,
        target: &TargetSnapshot,
        model: &str,
        progress: &mut Progress,
        tracker: &mut Tracker,
    ) -> Option<Upstream> {
        let snapshot = &self.table.snapshot;
        let mut skipped_members = false;
        let upstream = match target.kind {
            TargetKind::Provider => Upstream::provider(snapshot, target, model),
            TargetKind::Backend => Upstream::backend(snapshot, &target.key, target, model),
            TargetKind::AffinityGroup => self.member(
                target,
                model,
                &progress.tried_backends,
                &mut skipped_members,
            ),
        };
        if upstream.is_none() {
            let error = if skipped_members {
                "every member serving the model has an open circuit"
            } else {
                progress.reachable = true;
                "no usable member serves the model"
            };
            tracker.target_skipped(target.to_string(), model.to_owned(), error);
            if skipped_members {
                self.call.state.metrics.refused("circuit_open");
                progress
                    .last_error
                    .get_or_insert_with(|| circuit_open_error(&target.to_string(), 1));
            }
        }
        upstream
    }

    /// The member of the AffinityGroup `target` picked for `model` (not one of `tried`).
    /// Members whose circuit is open (with autoDisable) leave the rotation (`skipped_members`).
    fn member(
        &self,
        target: &TargetSnapshot,
        model: &str,
        tried: &[String],
        skipped_members: &mut bool,
    ) -> Option<Upstream> {
        let (state, snapshot, call) = (self.call.state, &self.table.snapshot, self.call);
        let g = snapshot.affinity_group(&target.key)?;
        let session = call
            .headers
            .get(g.session_header.as_str())
            .and_then(|v| v.to_str().ok())
            .or(call.info.session_id.as_deref());
        let mut exclude = tried.to_vec();
        for m in &g.members {
            let label = member_label(&m.backend, member_label_model(m, model));
            let now = Instant::now();
            // Only members with a breaker can be open: none is created here.
            let open = state
                .breakers
                .state(self.policy_key, &label, now)
                .is_some_and(|b| b.state == CircuitState::Open);
            if open
                && state
                    .breakers
                    .breaker(self.policy, &label, now)
                    .auto_disable()
            {
                exclude.push(m.backend.clone());
                *skipped_members = true;
            }
        }
        let b = state.balancer.pick(snapshot, g, model, session, &exclude)?;
        Upstream::backend(snapshot, &b, target, model)
    }

    /// Calls `upstream` (for `target`), retrying it while the policy and the budget allow.
    async fn call_target(
        &self,
        target: &TargetSnapshot,
        upstream: &Upstream,
        progress: &mut Progress,
        rng: &mut SplitMix64,
        tracker: &mut Tracker,
    ) -> TargetEnd {
        let label = breaker_label(upstream);
        let timeouts = Timeouts::resolve(&upstream.timeouts, self.policy.map(|p| &p.timeouts));
        let deadline = self.arrived + timeouts.total;
        let mut retry_no = 0u32;
        loop {
            let permit = match self.permit(upstream, &label, tracker) {
                Ok(p) => p,
                Err(open) if open.auto_disable => return TargetEnd::Next(open.error),
                // Without autoDisable an open circuit fails the request (no fallback).
                Err(open) => return TargetEnd::Done(Err(open.error)),
            };
            progress.reachable = true;
            let guard = match self.guard(target, upstream, permit, tracker).await {
                Ok(guard) => guard,
                Err(e) => return TargetEnd::Next(e),
            };
            progress.called = true;
            match attempt(self.call, upstream, timeouts, deadline, guard, tracker).await {
                Ok(handled) => return TargetEnd::Done(Ok(handled)),
                Err(f) if !f.next => return TargetEnd::Done(Err(f.error)),
                Err(f) => match self.retry_wait(upstream, &f, retry_no, deadline, rng) {
                    Some(wait) => {
                        retry_no += 1;
                        tokio::time::sleep(wait).await;
                    }
                    None => return TargetEnd::Next(f.error),
                },
            }
        }
    }

    /// The breaker of `label` admits a call, or refuses it (open circuit).
    fn permit(
        &self,
        upstream: &Upstream,
        label: &str,
        tracker: &mut Tracker,
    ) -> Result<Permit, OpenCircuit> {
        let state = self.call.state;
        let now = Instant::now();
        let breaker = state.breakers.breaker(self.policy, label, now);
        let rejected = match breaker.try_acquire(now) {
            Ok(p) => return Ok(p),
            Err(rejected) => rejected,
        };
        state.metrics.refused("circuit_open");
        let secs = rejected.retry_after_secs(now);
        tracker.not_called(
            upstream,
            format!(
                "circuit {} ({label}): not called, retry in {secs} s",
                rejected.state.as_str()
            ),
            Duration::ZERO,
        );
        Err(OpenCircuit {
            error: circuit_open_error(label, secs),
            auto_disable: breaker.auto_disable(),
        })
    }

    /// A backend slot (`maxConcurrency`) for the call, with the breaker's `permit`; refused
    /// (the queue is full or timed out), the permit is dropped, not counted.
    async fn guard(
        &self,
        target: &TargetSnapshot,
        upstream: &Upstream,
        permit: Permit,
        tracker: &mut Tracker,
    ) -> Result<CallGuard, ApiError> {
        let state = self.call.state;
        let now = Instant::now();
        let backend_key = match target.kind {
            TargetKind::Provider => None,
            _ => Some(upstream.name.as_str()),
        };
        let max_concurrency = backend_key
            .and_then(|k| self.table.snapshot.backend(k))
            .and_then(|b| b.max_concurrency);
        let slot = match (backend_key, max_concurrency) {
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
                        tracker.not_called(
                            upstream,
                            format!("not called: {saturated}"),
                            now.elapsed(),
                        );
                        return Err(ApiError::from(saturated));
                    }
                }
            }
            _ => ConcurrencyPermit::unlimited(),
        };
        Ok(CallGuard {
            permit,
            _slot: slot,
            _in_flight: upstream.backend.as_deref().map(|b| state.balancer.start(b)),
        })
    }

    /// How long to wait before retrying `upstream` after the failure `f` (the `retry_no`th
    /// retry so far), paid from the retry budget; `None`: not retried.
    fn retry_wait(
        &self,
        upstream: &Upstream,
        f: &Failed,
        retry_no: u32,
        deadline: tokio::time::Instant,
        rng: &mut SplitMix64,
    ) -> Option<Duration> {
        let retries = &self.retries;
        // A Retry-After longer than the policy's maxBackoff: not worth the wait here; the next
        // target (or the caller, told when to come back) takes it.
        let wait_too_long = f
            .retry_after
            .is_some_and(|ra| ra.as_millis() > u128::from(retries.max_backoff_ms));
        if !f.retryable || self.one_shot || wait_too_long || retry_no >= retries.attempts {
            return None;
        }
        let now = Instant::now();
        let wait = retry::backoff_for(retries, retry_no + 1, f.retry_after, rng)
            .filter(|w| tokio::time::Instant::now() + *w < deadline)?;
        if self.budget.try_withdraw(now) {
            retry_metric(self.call, upstream, "retried");
            return Some(wait);
        }
        retry_metric(self.call, upstream, "budget_exhausted");
        None
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
