//! Per-target circuit breakers (docs/architecture.md, "The request path"), one per (RouterPolicy key or
//! [`DEFAULT_POLICY`], target label), with the RouterPolicy `circuitBreaker` semantics:
//!
//! - **Closed** lets every call through. It opens when `consecutiveFailures` counted failures
//!   happen in a row, or when a failure is counted and, over the sliding window of
//!   `evaluationWindowSeconds`, at least `minRequestsThreshold` calls were counted and the failure
//!   percentage is `>= errorThresholdPercent`. A call slower than `latencyThresholdMs` counts as a
//!   failure even when it succeeded.
//! - **Open** rejects every call until `cooldownSeconds` have passed since it opened, then the
//!   next call (or [`Breaker::state`]) moves it to half-open.
//! - **HalfOpen** lets exactly `halfOpenRequests` probes through; further calls are rejected.
//!   When all of them succeed it closes (with a fresh window); any probe failure re-opens it with
//!   a new cooldown.
//!
//! Accounting a user can trust: only [`CallOutcome::Success`] and [`CallOutcome::Failure`] count.
//! [`CallOutcome::Ignored`] (the gateway refused the call itself, or the caller cancelled) and a
//! [`Permit`] dropped without [`Permit::finish`] never count; a half-open probe slot held by such a
//! permit is given back. The outcome of a call admitted before the breaker last changed state is
//! ignored too (a slow call admitted while closed cannot close or re-open a half-open circuit).
//!
//! The clock is passed in (`now`) everywhere so the logic is deterministic under test. Each
//! breaker has its own small mutex; the [`BreakerRegistry`] map is only write-locked to insert or
//! prune breakers. Transitions are reported through a [`TransitionHook`], exactly once per
//! transition and in order: the hook runs under the breaker's lock, so it must be quick (log,
//! count, set a gauge) and must not call back into the breaker or the registry.
//!
//! Window memory is bounded: at most [`MAX_BUCKETS`] buckets per breaker (1 s each for windows up
//! to 60 s, wider beyond), so the window slides with bucket granularity.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use switchyard_crds::router_policy::CircuitBreaker;
use switchyard_crds::snapshot::{RouterPolicySnapshot, Snapshot, TargetSnapshot};

/// Policy key used for routes that did not come from a RouterPolicy.
pub const DEFAULT_POLICY: &str = switchyard_crds::circuits::DEFAULT_POLICY;

/// Most buckets a breaker's sliding window holds.
pub const MAX_BUCKETS: u32 = 60;

/// Retry hint given when every half-open probe slot is taken.
pub const HALF_OPEN_RETRY_HINT: Duration = Duration::from_secs(1);

/// Circuit states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are rejected until the cooldown has passed.
    Open,
    /// A limited number of probe calls go through.
    HalfOpen,
}

impl CircuitState {
    /// Name used in RouterPolicy status (`TargetCircuit.state`) and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "Closed",
            Self::Open => "Open",
            Self::HalfOpen => "HalfOpen",
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an admitted call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The target answered well (still a failure when slower than the latency threshold).
    Success,
    /// The target failed.
    Failure,
    /// Not the target's doing (gateway refusal, caller cancelled): never counts.
    Ignored,
}

/// A call refused by an open or saturated half-open circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit {state}")]
pub struct Rejected {
    /// `Open` or `HalfOpen` (every probe slot taken).
    pub state: CircuitState,
    /// When a call may be admitted again: the end of the cooldown when open, a short hint
    /// ([`HALF_OPEN_RETRY_HINT`]) when half-open.
    pub retry_at: Instant,
}

impl Rejected {
    /// Whole seconds until [`Rejected::retry_at`], rounded up and at least 1, for `Retry-After`.
    pub fn retry_after_secs(&self, now: Instant) -> u64 {
        let d = self.retry_at.saturating_duration_since(now);
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// A state change of one breaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Policy key or [`DEFAULT_POLICY`].
    pub policy: Arc<str>,
    /// Target label.
    pub target: Arc<str>,
    /// State before.
    pub from: CircuitState,
    /// State after.
    pub to: CircuitState,
    /// When it happened.
    pub at: Instant,
    /// The policy's `notifyOnOpen` (log/Event wanted when `to` is `Open`).
    pub notify_on_open: bool,
}

/// Called once per transition, in order, under the breaker's lock: keep it quick and do not call
/// back into the breaker or its registry from it.
pub type TransitionHook = Arc<dyn Fn(&Transition) + Send + Sync>;

/// Status of one breaker, for metrics and RouterPolicy status.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerState {
    /// Policy key or [`DEFAULT_POLICY`].
    pub policy: String,
    /// Target label.
    pub target: String,
    /// Current state (an open circuit past its cooldown shows as half-open).
    pub state: CircuitState,
    /// Failures counted in the window.
    pub failures: u64,
    /// Successes counted in the window.
    pub successes: u64,
    /// failures / (failures + successes) in the window, percent (0 with no calls).
    pub error_rate_percent: f64,
    /// Counted failures in a row.
    pub consecutive_failures: u32,
    /// When the circuit last opened; `None` while closed.
    pub opened_at: Option<Instant>,
    /// Times the circuit opened since the breaker was created.
    pub times_opened: u64,
}

/// Thresholds in the units the breaker uses, sanitised (every count at least 1).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Settings {
    error_threshold_percent: u64,
    latency_threshold: Duration,
    consecutive_failures: u32,
    min_requests: u64,
    cooldown: Duration,
    half_open_requests: u32,
    bucket_secs: u64,
    buckets: u32,
    auto_disable: bool,
    notify_on_open: bool,
}

impl Settings {
    fn new(cfg: &CircuitBreaker) -> Self {
        let window = u64::from(cfg.evaluation_window_seconds.max(1));
        let bucket_secs = window.div_ceil(u64::from(MAX_BUCKETS));
        let buckets = u32::try_from(window.div_ceil(bucket_secs)).unwrap_or(MAX_BUCKETS);
        Self {
            error_threshold_percent: u64::from(cfg.error_threshold_percent.min(100)),
            latency_threshold: Duration::from_millis(u64::from(cfg.latency_threshold_ms.max(1))),
            consecutive_failures: cfg.consecutive_failures.max(1),
            min_requests: u64::from(cfg.min_requests_threshold.max(1)),
            cooldown: Duration::from_secs(u64::from(cfg.cooldown_seconds.max(1))),
            half_open_requests: cfg.half_open_requests.max(1),
            bucket_secs,
            buckets: buckets.max(1),
            auto_disable: cfg.auto_disable,
            notify_on_open: cfg.notify_on_open,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Bucket number since the breaker's origin; a slot holding an older number is stale.
    epoch: u64,
    successes: u32,
    failures: u32,
}

#[derive(Debug)]
struct Inner {
    cfg: CircuitBreaker,
    settings: Settings,
    state: CircuitState,
    /// Bumped on every transition; permits from an older generation do not count.
    generation: u64,
    buckets: Vec<Bucket>,
    consecutive: u32,
    opened_at: Option<Instant>,
    /// Half-open probes admitted and not given back (in flight + succeeded).
    probes_admitted: u32,
    probes_succeeded: u32,
    times_opened: u64,
    last_used: Instant,
}

/// One circuit breaker. Share it as `Arc<Breaker>`; see the module docs for the semantics.
pub struct Breaker {
    policy: Arc<str>,
    target: Arc<str>,
    origin: Instant,
    hook: Option<TransitionHook>,
    inner: Mutex<Inner>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("policy", &self.policy)
            .field("target", &self.target)
            .field("hook", &self.hook.is_some())
            .field("inner", &self.inner)
            .finish()
    }
}

/// What a permit was admitted as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Normal,
    Probe,
}

/// Admission of one call. Report how it ended with [`Permit::finish`]; dropping it unfinished
/// counts as [`CallOutcome::Ignored`] (and gives a half-open probe slot back).
#[derive(Debug)]
#[must_use = "a permit reports the call's outcome when finished; dropping it ignores the call"]
pub struct Permit {
    breaker: Arc<Breaker>,
    generation: u64,
    kind: Kind,
    done: bool,
}

impl Permit {
    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.kind == Kind::Probe
    }

    /// The breaker that admitted the call.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// Records how the call ended. `latency` is the time the target took (a success slower than
    /// `latencyThresholdMs` counts as a failure).
    pub fn finish(mut self, outcome: CallOutcome, latency: Duration, now: Instant) {
        self.done = true;
        self.breaker
            .record(self.generation, self.kind, outcome, latency, now);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.release(self.generation, self.kind);
        }
    }
}

impl Breaker {
    /// A standalone breaker (policy [`DEFAULT_POLICY`], empty target label, no hook).
    pub fn new(cfg: &CircuitBreaker, now: Instant) -> Self {
        Self::named(DEFAULT_POLICY, "", cfg, now, None)
    }

    /// A breaker for (policy, target) reporting transitions to `hook`.
    pub fn named(
        policy: &str,
        target: &str,
        cfg: &CircuitBreaker,
        now: Instant,
        hook: Option<TransitionHook>,
    ) -> Self {
        let settings = Settings::new(cfg);
        let buckets = vec![Bucket::default(); settings.buckets as usize];
        Self {
            policy: Arc::from(policy),
            target: Arc::from(target),
            origin: now,
            hook,
            inner: Mutex::new(Inner {
                cfg: cfg.clone(),
                settings,
                state: CircuitState::Closed,
                generation: 0,
                buckets,
                consecutive: 0,
                opened_at: None,
                probes_admitted: 0,
                probes_succeeded: 0,
                times_opened: 0,
                last_used: now,
            }),
        }
    }

    /// Policy key.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Target label.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The configuration in force.
    pub fn config(&self) -> CircuitBreaker {
        self.lock().cfg.clone()
    }

    /// `autoDisable`: an open target should leave routing (the proxy goes to the next target)
    /// rather than fail the call.
    pub fn auto_disable(&self) -> bool {
        self.lock().settings.auto_disable
    }

    /// Asks to make a call now.
    pub fn try_acquire(self: &Arc<Self>, now: Instant) -> Result<Permit, Rejected> {
        let result = {
            let mut inner = self.lock();
            inner.last_used = inner.last_used.max(now);
            self.advance(&mut inner, now);
            let result = match inner.state {
                CircuitState::Closed => Ok(Kind::Normal),
                CircuitState::Open => Err(Rejected {
                    state: CircuitState::Open,
                    retry_at: inner.opened_at.map_or(now, |t| t + inner.settings.cooldown),
                }),
                CircuitState::HalfOpen => {
                    if inner.probes_admitted < inner.settings.half_open_requests {
                        inner.probes_admitted += 1;
                        Ok(Kind::Probe)
                    } else {
                        Err(Rejected {
                            state: CircuitState::HalfOpen,
                            retry_at: now + HALF_OPEN_RETRY_HINT,
                        })
                    }
                }
            };
            result.map(|kind| (kind, inner.generation))
        };
        result.map(|(kind, generation)| Permit {
            breaker: self.clone(),
            generation,
            kind,
            done: false,
        })
    }

    /// The breaker's status now (moves an open circuit past its cooldown to half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        let mut inner = self.lock();
        self.advance(&mut inner, now);
        self.status(&inner, now)
    }

    /// Applies new thresholds without resetting state. A changed window length restarts the
    /// window's counts (the buckets no longer line up); a half-open circuit whose probes have
    /// all succeeded under the new `halfOpenRequests` closes.
    pub fn update_config(&self, cfg: &CircuitBreaker, now: Instant) {
        let mut inner = self.lock();
        if inner.cfg == *cfg {
            return;
        }
        let settings = Settings::new(cfg);
        if (settings.bucket_secs, settings.buckets)
            != (inner.settings.bucket_secs, inner.settings.buckets)
        {
            inner.buckets = vec![Bucket::default(); settings.buckets as usize];
        }
        inner.cfg = cfg.clone();
        inner.settings = settings;
        if inner.state == CircuitState::HalfOpen
            && inner.probes_succeeded >= inner.settings.half_open_requests
        {
            self.transition(&mut inner, CircuitState::Closed, now);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is plain counters, always consistent between statements: a panic elsewhere
        // cannot leave it half-updated, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open → HalfOpen once the cooldown has passed.
    fn advance(&self, inner: &mut Inner, now: Instant) {
        let due = inner.state == CircuitState::Open
            && inner
                .opened_at
                .is_none_or(|t| now.saturating_duration_since(t) >= inner.settings.cooldown);
        if due {
            self.transition(inner, CircuitState::HalfOpen, now);
        }
    }

    /// Moves to `to` and reports it (under the lock, so reports come in order).
    fn transition(&self, inner: &mut Inner, to: CircuitState, now: Instant) {
        let from = inner.state;
        if from == to {
            return;
        }
        inner.state = to;
        inner.generation += 1;
        inner.consecutive = 0;
        inner.probes_admitted = 0;
        inner.probes_succeeded = 0;
        match to {
            CircuitState::Open => {
                inner.opened_at = Some(now);
                inner.times_opened += 1;
            }
            CircuitState::HalfOpen => {}
            CircuitState::Closed => {
                inner.opened_at = None;
                inner.buckets.fill(Bucket::default());
            }
        }
        if let Some(hook) = &self.hook {
            hook(&Transition {
                policy: self.policy.clone(),
                target: self.target.clone(),
                from,
                to,
                at: now,
                notify_on_open: inner.settings.notify_on_open,
            });
        }
    }

    fn epoch(&self, inner: &Inner, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / inner.settings.bucket_secs
    }

    /// (successes, failures) in the window ending at `now`.
    fn window(&self, inner: &Inner, now: Instant) -> (u64, u64) {
        let current = self.epoch(inner, now);
        let span = u64::from(inner.settings.buckets);
        inner
            .buckets
            .iter()
            .filter(|b| b.epoch <= current && current - b.epoch < span)
            .fold((0, 0), |(s, f), b| {
                (s + u64::from(b.successes), f + u64::from(b.failures))
            })
    }

    fn count(&self, inner: &mut Inner, failure: bool, now: Instant) {
        let epoch = self.epoch(inner, now);
        let len = inner.buckets.len() as u64;
        let Some(slot) = usize::try_from(epoch % len.max(1))
            .ok()
            .and_then(|i| inner.buckets.get_mut(i))
        else {
            return;
        };
        if slot.epoch > epoch {
            // A sample older than the whole window (a caller's stale `now`): out of the window.
            return;
        }
        if slot.epoch != epoch {
            *slot = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        if failure {
            slot.failures = slot.failures.saturating_add(1);
        } else {
            slot.successes = slot.successes.saturating_add(1);
        }
    }

    fn record(
        &self,
        generation: u64,
        kind: Kind,
        outcome: CallOutcome,
        latency: Duration,
        now: Instant,
    ) {
        let mut inner = self.lock();
        inner.last_used = inner.last_used.max(now);
        if generation != inner.generation {
            // Admitted before the last transition: says nothing about the current state.
            return;
        }
        let failure = match outcome {
            CallOutcome::Ignored => {
                if kind == Kind::Probe {
                    inner.probes_admitted = inner.probes_admitted.saturating_sub(1);
                }
                return;
            }
            CallOutcome::Failure => true,
            CallOutcome::Success => latency > inner.settings.latency_threshold,
        };
        match kind {
            Kind::Normal => {
                self.count(&mut inner, failure, now);
                if failure {
                    inner.consecutive = inner.consecutive.saturating_add(1);
                    let (successes, failures) = self.window(&inner, now);
                    let total = successes + failures;
                    let by_count = inner.consecutive >= inner.settings.consecutive_failures;
                    let by_rate = total >= inner.settings.min_requests
                        && failures * 100 >= inner.settings.error_threshold_percent * total;
                    if by_count || by_rate {
                        self.transition(&mut inner, CircuitState::Open, now);
                    }
                } else {
                    inner.consecutive = 0;
                }
            }
            Kind::Probe if failure => self.transition(&mut inner, CircuitState::Open, now),
            Kind::Probe => {
                inner.probes_succeeded += 1;
                if inner.probes_succeeded >= inner.settings.half_open_requests {
                    self.transition(&mut inner, CircuitState::Closed, now);
                }
            }
        }
    }

    fn release(&self, generation: u64, kind: Kind) {
        if kind != Kind::Probe {
            return;
        }
        let mut inner = self.lock();
        if generation == inner.generation {
            inner.probes_admitted = inner.probes_admitted.saturating_sub(1);
        }
    }

    fn status(&self, inner: &Inner, now: Instant) -> BreakerState {
        let (successes, failures) = self.window(inner, now);
        let total = successes + failures;
        BreakerState {
            policy: self.policy.to_string(),
            target: self.target.to_string(),
            state: inner.state,
            failures,
            successes,
            error_rate_percent: if total == 0 {
                0.0
            } else {
                failures as f64 * 100.0 / total as f64
            },
            consecutive_failures: inner.consecutive,
            opened_at: inner.opened_at,
            times_opened: inner.times_opened,
        }
    }

    /// Closed with nothing counted in the window and unused for `idle`.
    fn is_idle(&self, now: Instant, idle: Duration) -> bool {
        let inner = self.lock();
        inner.state == CircuitState::Closed
            && now.saturating_duration_since(inner.last_used) >= idle
            && self.window(&inner, now) == (0, 0)
    }
}

type Targets = HashMap<String, Arc<Breaker>>;

/// Every breaker, by policy key then target label. Lives outside the routing snapshot so state
/// survives snapshot swaps (see [`BreakerRegistry::apply_snapshot`]).
pub struct BreakerRegistry {
    default_cfg: RwLock<CircuitBreaker>,
    breakers: RwLock<HashMap<String, Targets>>,
    hook: Option<TransitionHook>,
}

impl fmt::Debug for BreakerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("default_cfg", &self.default_cfg)
            .field("breakers", &self.breakers)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Default for BreakerRegistry {
    fn default() -> Self {
        Self::new(CircuitBreaker::default())
    }
}

impl BreakerRegistry {
    /// A registry whose routes without a RouterPolicy use `default_cfg`.
    pub fn new(default_cfg: CircuitBreaker) -> Self {
        Self {
            default_cfg: RwLock::new(default_cfg),
            breakers: RwLock::new(HashMap::new()),
            hook: None,
        }
    }

    /// Reports every transition of every breaker created from now on to `hook`.
    pub fn with_hook(mut self, hook: TransitionHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The configuration for routes without a RouterPolicy.
    pub fn default_config(&self) -> CircuitBreaker {
        self.default_cfg
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the default configuration and applies it to the existing default breakers.
    pub fn set_default_config(&self, cfg: CircuitBreaker, now: Instant) {
        *self
            .default_cfg
            .write()
            .unwrap_or_else(PoisonError::into_inner) = cfg.clone();
        for b in self.policy_breakers(DEFAULT_POLICY) {
            b.update_config(&cfg, now);
        }
    }

    /// The breaker of `target` under `policy` (`None`: [`DEFAULT_POLICY`] and the default
    /// configuration), created on first use.
    pub fn breaker(
        &self,
        policy: Option<&RouterPolicySnapshot>,
        target: &str,
        now: Instant,
    ) -> Arc<Breaker> {
        match policy {
            Some(p) => self.breaker_with(&p.key, target, &p.circuit_breaker, now),
            None => {
                if let Some(b) = self.existing(DEFAULT_POLICY, target) {
                    return b;
                }
                let cfg = self.default_config();
                self.breaker_with(DEFAULT_POLICY, target, &cfg, now)
            }
        }
    }

    /// The breaker of (policy key, target), created with `cfg` on first use (an existing
    /// breaker keeps its configuration: thresholds change through [`Self::apply_snapshot`]).
    pub fn breaker_with(
        &self,
        policy: &str,
        target: &str,
        cfg: &CircuitBreaker,
        now: Instant,
    ) -> Arc<Breaker> {
        if let Some(b) = self.existing(policy, target) {
            return b;
        }
        let mut map = self
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(policy.to_owned())
            .or_default()
            .entry(target.to_owned())
            .or_insert_with(|| {
                Arc::new(Breaker::named(policy, target, cfg, now, self.hook.clone()))
            })
            .clone()
    }

    /// Shorthand for `breaker(policy, target, now).try_acquire(now)`.
    pub fn try_acquire(
        &self,
        policy: Option<&RouterPolicySnapshot>,
        target: &str,
        now: Instant,
    ) -> Result<Permit, Rejected> {
        self.breaker(policy, target, now).try_acquire(now)
    }

    /// After a snapshot swap: drops the breakers of policies that are gone and of targets the
    /// snapshot no longer has, and gives the others their policy's current thresholds, keeping
    /// their state.
    ///
    /// Target labels are expected in the [`TargetSnapshot`] display form (`kind/name`, optionally
    /// `:model`, as the upstream resolver writes them); a label whose `kind/name` names no
    /// provider, backend or affinity group of the snapshot is dropped.
    pub fn apply_snapshot(&self, snapshot: &Snapshot, now: Instant) {
        let policies: HashMap<&str, &RouterPolicySnapshot> = snapshot
            .router_policies
            .iter()
            .map(|p| (p.key.as_str(), p))
            .collect();
        let targets = known_targets(snapshot);
        self.retain(|policy, target| {
            (policy == DEFAULT_POLICY || policies.contains_key(policy))
                && targets.contains(target_base(target))
        });
        for (key, p) in &policies {
            for b in self.policy_breakers(key) {
                b.update_config(&p.circuit_breaker, now);
            }
        }
    }

    /// Keeps only the breakers for which `keep(policy, target)` holds.
    pub fn retain(&self, mut keep: impl FnMut(&str, &str) -> bool) {
        let mut map = self
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.retain(|policy, targets| {
            targets.retain(|target, _| keep(policy, target));
            !targets.is_empty()
        });
    }

    /// Drops closed breakers unused for `idle` with nothing in their window and no call in
    /// flight. (Target labels never carry client-chosen model names: the proxy labels an
    /// undeclared model `other`, so the registry is bounded by the snapshot.) Returns how many
    /// were dropped.
    pub fn prune_idle(&self, now: Instant, idle: Duration) -> usize {
        let mut map = self
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut dropped = 0;
        map.retain(|_, targets| {
            targets.retain(|_, b| {
                // Only the map holds it: no permit is outstanding.
                let keep = Arc::strong_count(b) > 1 || !b.is_idle(now, idle);
                dropped += usize::from(!keep);
                keep
            });
            !targets.is_empty()
        });
        dropped
    }

    /// Status of every breaker, ordered by policy then target.
    pub fn snapshot(&self, now: Instant) -> Vec<BreakerState> {
        let all: Vec<Arc<Breaker>> = {
            let map = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
            map.values().flat_map(|t| t.values().cloned()).collect()
        };
        let mut out: Vec<BreakerState> = all.iter().map(|b| b.state(now)).collect();
        out.sort_by(|a, b| (&a.policy, &a.target).cmp(&(&b.policy, &b.target)));
        out
    }

    /// Status of one breaker, if it exists.
    pub fn state(&self, policy: &str, target: &str, now: Instant) -> Option<BreakerState> {
        self.existing(policy, target).map(|b| b.state(now))
    }

    /// Number of breakers.
    pub fn len(&self) -> usize {
        let map = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
        map.values().map(HashMap::len).sum()
    }

    /// Whether there is no breaker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn existing(&self, policy: &str, target: &str) -> Option<Arc<Breaker>> {
        let map = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
        map.get(policy).and_then(|t| t.get(target)).cloned()
    }

    fn policy_breakers(&self, policy: &str) -> Vec<Arc<Breaker>> {
        let map = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
        map.get(policy)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// `kind/name` of every provider, backend and affinity group of the snapshot.
fn known_targets(snapshot: &Snapshot) -> HashSet<String> {
    use switchyard_crds::snapshot::TargetKind;
    let label = |kind, key: &str| {
        TargetSnapshot {
            kind,
            key: key.to_owned(),
            model: None,
        }
        .to_string()
    };
    let providers = snapshot
        .providers
        .iter()
        .map(|p| label(TargetKind::Provider, &p.key));
    let backends = snapshot
        .backends
        .iter()
        .map(|b| label(TargetKind::Backend, &b.key));
    let groups = snapshot
        .affinity_groups
        .iter()
        .map(|g| label(TargetKind::AffinityGroup, &g.key));
    providers.chain(backends).chain(groups).collect()
}

/// `kind/name` of a `kind/name:model` label.
fn target_base(label: &str) -> &str {
    label.split_once(':').map_or(label, |(base, _)| base)
}

#[cfg(test)]
mod tests;
