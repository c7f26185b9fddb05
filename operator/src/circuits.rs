//! The circuit board: the latest circuit report of every data plane (`POST /v1/circuits`, wire
//! type [`switchyard_crds::circuits`]), merged into one view per (policy, target), and how that
//! view reaches RouterPolicy status.
//!
//! - A report replaces the previous one of the same data plane. A data plane not heard from for
//!   the TTL (`REPORT_TTL_SECS`, 35 s: three heartbeats and some) no longer counts, so a pod
//!   that died does not keep a circuit open in status.
//! - [`CircuitBoard::merged`] gives per (policy, target) the worst state across data planes
//!   (`Open` > `HalfOpen` > `Closed`), on how many data planes it is open, and the highest error
//!   rate.
//! - Subscribers ([`CircuitBoard::subscribe`]) are woken when the merged view changes: a state,
//!   or a circuit's opening count (an open-and-close between two reports). Each such change is
//!   logged too: that, and the `switchyard_operator_circuits{state}` gauge, is all that happens
//!   for circuits of the `default` policy (routes without a RouterPolicy).
//! - [`apply`] turns the merged view into RouterPolicy `status.targets` and `status.state`
//!   (see its docs for AffinityGroup targets).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use switchyard_crds::circuits::{
    CircuitReport, CircuitStateName, REPORT_INTERVAL_SECS, REPORT_TTL_SECS,
};
use switchyard_crds::router_policy::TargetCircuit;
use switchyard_crds::snapshot::{RouterPolicySnapshot, Snapshot, TargetKind, TargetSnapshot};
use tokio::sync::watch;

use crate::status::Counters;

/// Most entries of a RouterPolicy's `status.targets` (a route through large AffinityGroups
/// could otherwise grow the status without bound).
pub const MAX_STATUS_TARGETS: usize = 64;

/// A circuit: a (policy key or `default`, target label) pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CircuitKey {
    /// RouterPolicy key (`namespace/name`) or `default`.
    pub policy: String,
    /// Target label, e.g. `provider/openai:gpt-4o`.
    pub target: String,
}

/// One circuit across the data planes that report it.
#[derive(Clone, Debug, PartialEq)]
pub struct MergedCircuit {
    /// The worst state reported.
    pub state: CircuitStateName,
    /// Data planes reporting this circuit.
    pub data_planes: usize,
    /// Of those, how many report it open.
    pub open_on: usize,
    /// Of those, how many report it half-open.
    pub half_open_on: usize,
    /// The highest error rate reported, percent.
    pub error_rate_percent: f64,
    /// The earliest opening time reported (while not closed somewhere).
    pub opened_at: Option<Timestamp>,
    /// Times it opened, by data plane (each counts since that data plane started).
    pub times_opened: BTreeMap<String, u64>,
}

impl MergedCircuit {
    /// Times it opened, summed over the data planes reporting it.
    pub fn times_opened_total(&self) -> u64 {
        self.times_opened.values().sum()
    }
}

/// The merged view of every live report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Merged {
    /// Circuits by (policy, target).
    pub circuits: BTreeMap<CircuitKey, MergedCircuit>,
    /// Data planes with a live report.
    pub data_planes: usize,
}

impl Merged {
    /// One circuit.
    pub fn get(&self, policy: &str, target: &str) -> Option<&MergedCircuit> {
        self.circuits.get(&CircuitKey {
            policy: policy.to_owned(),
            target: target.to_owned(),
        })
    }

    /// The circuits of one policy, by target label.
    pub fn policy<'a>(
        &'a self,
        policy: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a MergedCircuit)> + 'a {
        let start = CircuitKey {
            policy: policy.to_owned(),
            target: String::new(),
        };
        self.circuits
            .range(start..)
            .take_while(move |(k, _)| k.policy == policy)
            .map(|(k, c)| (k.target.as_str(), c))
    }

    /// How many circuits are in each state (every state listed).
    pub fn count_by_state(&self) -> [(CircuitStateName, usize); 3] {
        let mut out = [
            (CircuitStateName::Closed, 0),
            (CircuitStateName::HalfOpen, 0),
            (CircuitStateName::Open, 0),
        ];
        for c in self.circuits.values() {
            for (s, n) in &mut out {
                if *s == c.state {
                    *n += 1;
                }
            }
        }
        out
    }

    /// What wakes subscribers: each circuit's state and summed opening count.
    fn signature(&self) -> BTreeMap<CircuitKey, (CircuitStateName, u64)> {
        self.circuits
            .iter()
            .map(|(k, c)| (k.clone(), (c.state, c.times_opened_total())))
            .collect()
    }
}

#[derive(Debug)]
struct Held {
    report: CircuitReport,
    received: Instant,
}

#[derive(Debug, Default)]
struct State {
    reports: BTreeMap<String, Held>,
    /// The merged view subscribers were last woken for.
    announced: BTreeMap<CircuitKey, (CircuitStateName, u64)>,
}

/// Label of the report counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub(crate) result: &'static str,
}

#[derive(Debug)]
struct Inner {
    ttl: Duration,
    created: Instant,
    warmup: Duration,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    reports: Family<ResultLabel, Counter>,
}

/// The latest circuit report per data plane. Cheap to clone; clones share the board.
#[derive(Clone, Debug)]
pub struct CircuitBoard {
    inner: Arc<Inner>,
}

impl Default for CircuitBoard {
    fn default() -> Self {
        Self::new(Duration::from_secs(REPORT_TTL_SECS))
    }
}

impl CircuitBoard {
    /// A board forgetting a data plane `ttl` after its last report.
    pub fn new(ttl: Duration) -> Self {
        Self::with_warmup(ttl, Duration::from_secs(REPORT_INTERVAL_SECS + 2).min(ttl))
    }

    /// A board forgetting a data plane `ttl` after its last report, warm `warmup` after its
    /// creation (see [`Self::is_warm`]).
    pub fn with_warmup(ttl: Duration, warmup: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                ttl,
                created: Instant::now(),
                warmup,
                state: Mutex::new(State::default()),
                changed: watch::Sender::new(0),
                reports: Family::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a data plane's report, received at `now` (it replaces that data plane's previous
    /// one). Wakes subscribers when the merged view changed.
    pub fn record(&self, report: CircuitReport, now: Instant) {
        let mut st = self.lock();
        st.reports.insert(
            report.data_plane.clone(),
            Held {
                report,
                received: now,
            },
        );
        self.announce(&mut st, now);
    }

    /// Forgets the reports older than the TTL at `now`; wakes subscribers when that changed
    /// the merged view.
    pub fn expire(&self, now: Instant) {
        let ttl = self.inner.ttl;
        let mut st = self.lock();
        let before = st.reports.len();
        st.reports.retain(|name, h| {
            let live = now.saturating_duration_since(h.received) <= ttl;
            if !live {
                tracing::info!(data_plane = %name, "no circuit report from this data plane within the TTL; its circuits no longer count");
            }
            live
        });
        if st.reports.len() != before {
            self.announce(&mut st, now);
        }
    }

    /// Expires old reports every `every` until the task is dropped.
    pub async fn run_expiry(self, every: Duration) {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.expire(Instant::now());
        }
    }

    /// Whether every live data plane has had the time to report since the board was created
    /// (one heartbeat interval and some): before that, a circuit missing from the board may
    /// just not be reported yet, so status keeps what it shows and no Event is raised.
    pub fn is_warm(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.inner.created) >= self.inner.warmup
    }

    /// The merged view of the reports live at `now`.
    pub fn merged(&self, now: Instant) -> Merged {
        merge(&self.lock(), self.inner.ttl, now)
    }

    /// The data planes with a live report at `now`, with the snapshot version each reported.
    pub fn data_planes(&self, now: Instant) -> Vec<(String, String)> {
        let ttl = self.inner.ttl;
        self.lock()
            .reports
            .iter()
            .filter(|(_, h)| now.saturating_duration_since(h.received) <= ttl)
            .map(|(n, h)| (n.clone(), h.report.snapshot_version.clone()))
            .collect()
    }

    /// A receiver whose value changes whenever the merged view does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Counts a received report by `result` (`accepted`, `invalid`, `too_large`).
    pub(crate) fn count(&self, result: &'static str) {
        self.inner
            .reports
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Reports received with `result` (`accepted`, `invalid`, `too_large`).
    pub fn reports(&self, result: &'static str) -> u64 {
        self.inner
            .reports
            .get_or_create(&ResultLabel { result })
            .get()
    }

    /// Registers `switchyard_operator_circuits{state}` (circuits of the merged view by state),
    /// `switchyard_operator_circuit_dataplanes` (data planes with a live report) and
    /// `switchyard_operator_circuit_reports_total{result}`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "switchyard_operator_circuit_reports",
            "Circuit reports received from data planes, by result",
            self.inner.reports.clone(),
        );
        registry.register_collector(Box::new(BoardCollector {
            board: self.clone(),
        }));
    }

    /// Logs the circuits whose merged state changed and wakes subscribers when the signature
    /// changed.
    fn announce(&self, st: &mut State, now: Instant) {
        let merged = merge(st, self.inner.ttl, now);
        let signature = merged.signature();
        if signature == st.announced {
            return;
        }
        for (k, c) in &merged.circuits {
            let before = st.announced.get(k).map(|(s, _)| *s);
            if before == Some(c.state) || (before.is_none() && c.state == CircuitStateName::Closed)
            {
                continue;
            }
            let from = before.unwrap_or(CircuitStateName::Closed);
            if c.state == CircuitStateName::Open {
                tracing::warn!(
                    policy = %k.policy, target = %k.target, %from,
                    open_on = c.open_on, data_planes = c.data_planes,
                    error_rate_percent = c.error_rate_percent,
                    "circuit open on a data plane"
                );
            } else {
                tracing::info!(
                    policy = %k.policy, target = %k.target, %from, to = %c.state,
                    open_on = c.open_on, data_planes = c.data_planes,
                    "circuit state changed"
                );
            }
        }
        for (k, (s, _)) in &st.announced {
            if *s != CircuitStateName::Closed && !merged.circuits.contains_key(k) {
                tracing::info!(policy = %k.policy, target = %k.target, from = %s, "circuit no longer reported by any data plane");
            }
        }
        st.announced = signature;
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn merge(st: &State, ttl: Duration, now: Instant) -> Merged {
    let mut out = Merged::default();
    for (name, h) in &st.reports {
        if now.saturating_duration_since(h.received) > ttl {
            continue;
        }
        out.data_planes += 1;
        for e in &h.report.circuits {
            let key = CircuitKey {
                policy: e.policy.clone(),
                target: e.target.clone(),
            };
            let rate = if e.error_rate_percent.is_finite() {
                e.error_rate_percent.clamp(0.0, 100.0)
            } else {
                0.0
            };
            let c = out.circuits.entry(key).or_insert_with(|| MergedCircuit {
                state: CircuitStateName::Closed,
                data_planes: 0,
                open_on: 0,
                half_open_on: 0,
                error_rate_percent: 0.0,
                opened_at: None,
                times_opened: BTreeMap::new(),
            });
            // A data plane listing a circuit twice counts once, with its worst entry.
            let first = !c.times_opened.contains_key(name);
            let times = c.times_opened.entry(name.clone()).or_default();
            *times = (*times).max(e.times_opened);
            if first {
                c.data_planes += 1;
                match e.state {
                    CircuitStateName::Open => c.open_on += 1,
                    CircuitStateName::HalfOpen => c.half_open_on += 1,
                    CircuitStateName::Closed => {}
                }
            }
            c.state = c.state.max(e.state);
            c.error_rate_percent = c.error_rate_percent.max(rate);
            if e.state != CircuitStateName::Closed
                && let Some(at) = e.opened_at
            {
                c.opened_at = Some(c.opened_at.map_or(at, |o| o.min(at)));
            }
        }
    }
    out
}

/// Scrape-time gauges from the merged view.
#[derive(Debug)]
struct BoardCollector {
    board: CircuitBoard,
}

/// Label of `switchyard_operator_circuits`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

impl prometheus_client::collector::Collector for BoardCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let merged = self.board.merged(Instant::now());
        let mut family = encoder.encode_descriptor(
            "switchyard_operator_circuits",
            "Circuits (policy, target) by merged state across the data planes reporting them",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (state, n) in merged.count_by_state() {
            let label = StateLabel {
                state: state.as_str(),
            };
            ConstGauge::new(n as i64).encode(family.encode_family(&label)?)?;
        }
        let planes = ConstGauge::new(merged.data_planes as i64);
        let m = encoder.encode_descriptor(
            "switchyard_operator_circuit_dataplanes",
            "Data planes whose circuit report is live (heard from within the TTL)",
            None,
            planes.metric_type(),
        )?;
        planes.encode(m)
    }
}

/// The worst state of the circuits of `policy` whose label is the target's (a target with a
/// model, named as the data plane's breakers name it: a model the target does not declare is
/// `other`, see [`Snapshot::label_model`]) or starts with `label:` (a target without one: the
/// proxy fills in the requested model, declared or `other`).
fn target_state(
    merged: &Merged,
    snapshot: &Snapshot,
    policy: &str,
    target: &TargetSnapshot,
) -> Option<CircuitStateName> {
    if let Some(model) = &target.model {
        let label = TargetSnapshot {
            kind: target.kind,
            key: target.key.clone(),
            model: Some(
                snapshot
                    .label_model(target.kind, &target.key, model)
                    .to_owned(),
            ),
        };
        return merged.get(policy, &label.to_string()).map(|c| c.state);
    }
    let label = target.to_string();
    let prefix = format!("{label}:");
    merged
        .policy(policy)
        .filter(|(t, _)| t.starts_with(&prefix))
        .map(|(_, c)| c.state)
        .max()
}

/// The breakers a route target has: itself for a provider or backend; for an AffinityGroup,
/// each member backend serving the target's model (every member when it names none).
fn breaker_targets(snapshot: &Snapshot, target: &TargetSnapshot) -> Vec<TargetSnapshot> {
    if target.kind != TargetKind::AffinityGroup {
        return vec![target.clone()];
    }
    let Some(group) = snapshot.affinity_group(&target.key) else {
        return Vec::new();
    };
    group
        .members
        .iter()
        .filter(|m| {
            target
                .model
                .as_ref()
                .is_none_or(|model| m.models.contains(model))
        })
        .map(|m| TargetSnapshot {
            kind: TargetKind::Backend,
            key: m.backend.clone(),
            model: target.model.clone(),
        })
        .collect()
}

/// The circuit view of one RouterPolicy: its primary target's state (`None` when closed) and
/// `status.targets`.
///
/// `targets` lists every target of the route, in route order and without repeats, with its
/// merged state (`Closed` when no data plane reports it). A provider or backend target is
/// listed by its label (`provider/NAME:model`; without a model, `provider/NAME`, the worst of
/// its per-model circuits). An AffinityGroup target is listed member by member, as its circuits
/// are kept: `backend/MEMBER:model` for each member serving the model (a group without such
/// members is listed by its own label, `Closed`). At most [`MAX_STATUS_TARGETS`] entries.
///
/// The primary target is the route's first. For an AffinityGroup primary, the state is the
/// *best* of its members' (the group still routes while one member's circuit is closed): it is
/// `Open` only when every member's circuit is open.
pub fn policy_circuits(
    policy: &RouterPolicySnapshot,
    snapshot: &Snapshot,
    merged: &Merged,
) -> (Option<CircuitStateName>, Vec<TargetCircuit>) {
    let mut targets: Vec<TargetCircuit> = Vec::new();
    let mut primary = None;
    for (i, route_target) in policy.route.iter().enumerate() {
        let breakers = breaker_targets(snapshot, route_target);
        let mut states = Vec::with_capacity(breakers.len());
        for b in &breakers {
            let state =
                target_state(merged, snapshot, &policy.key, b).unwrap_or(CircuitStateName::Closed);
            states.push(state);
            push(&mut targets, b.to_string(), state);
        }
        if breakers.is_empty() {
            push(
                &mut targets,
                route_target.to_string(),
                CircuitStateName::Closed,
            );
        }
        if i == 0 {
            primary = if route_target.kind == TargetKind::AffinityGroup {
                states.iter().copied().min()
            } else {
                states.iter().copied().max()
            };
        }
    }
    let primary = primary.filter(|s| *s != CircuitStateName::Closed);
    (primary, targets)
}

fn push(targets: &mut Vec<TargetCircuit>, target: String, state: CircuitStateName) {
    if targets.len() < MAX_STATUS_TARGETS && !targets.iter().any(|t| t.target == target) {
        targets.push(TargetCircuit {
            target,
            state: state.as_str().to_owned(),
        });
    }
}

/// Puts the circuit view of every RouterPolicy of `snapshot` into `counters` (`circuit` and
/// `targets` of [`crate::status::PolicyCounters`]), replacing whatever circuit view they held.
pub fn apply(counters: &mut Counters, snapshot: &Snapshot, merged: &Merged) {
    for c in counters.policies.values_mut() {
        c.circuit = None;
        c.targets = None;
    }
    for p in &snapshot.router_policies {
        let (state, targets) = policy_circuits(p, snapshot, merged);
        let c = counters.policies.entry(p.key.clone()).or_default();
        c.circuit = state.map(|s| s.as_str().to_owned());
        c.targets = Some(targets);
    }
}

/// Keys of the RouterPolicies of `snapshot` with `circuitBreaker.notifyOnOpen`.
pub fn notifying_policies(snapshot: &Snapshot) -> HashSet<String> {
    snapshot
        .router_policies
        .iter()
        .filter(|p| p.circuit_breaker.notify_on_open)
        .map(|p| p.key.clone())
        .collect()
}

#[cfg(test)]
mod tests;
