//! Request and token limits per workspace and per caller, with sliding-window accounting.
//!
//! # Algorithm
//!
//! Every (scope, key, dimension) has a sliding window: a queue of slots, each holding an amount
//! (requests or tokens) and the time of the latest event added to it. Slots are 1 s wide for the
//! per-minute windows and 6 min wide for the per-day window. An amount stops counting when the
//! latest event of its slot is a full window old (`now - last >= window`), so:
//!
//! - no event is forgotten before it is a full window old: at most `limit` requests are admitted
//!   in **any** rolling 60 s (the guarantee is exact, never over);
//! - an event is forgotten at most one slot late (1 s of 60 s, 6 min of 24 h) and exactly on time
//!   when it is the latest of its slot (e.g. a burst at one instant is freed exactly 60 s later).
//!
//! A window holds at most `window / slot + 1` slots (61 per minute, 241 per day) whatever the
//! traffic, and only slots that saw events.
//!
//! # Admission and charging
//!
//! [`Limiter::admit`] checks every configured limit of the workspace and of the caller and admits
//! only if all pass; only then is the request counted (refusals never count). A request limit
//! passes when `requests in window < limit`; a token limit passes when `tokens in window < limit`
//! (some budget remains). Tokens are charged after the response by [`Admission::charge`] with the
//! actual usage, so one request may overshoot a token limit by its own size; the overshoot is
//! counted and delays later requests until it leaves the window.
//!
//! Usage is counted only while a limit on it is configured: a newly configured limit counts from
//! then on; counts made before a limit was removed stay until they leave their window (so a limit
//! removed and restored within its window still sees them). Limits are read from the snapshot
//! passed to each call, so a snapshot swap applies at once, to state already counted.
//!
//! # Memory
//!
//! Keys live in two tables (workspaces, callers), each capped ([`LimiterConfig`]). A key is
//! dropped as soon as all its windows are empty (at most a day after its last use; a minute for
//! keys with only per-minute limits), by a sweep run at most every `sweep_interval` from
//! `admit`. When a table is full and a new key arrives, a sweep runs; if still full, the least
//! recently used 1/16 of the keys are evicted (their counts are lost, i.e. their limits restart
//! from zero). A key costs about 200 bytes plus 16 bytes per non-empty slot: at most about
//! 6.5 KB when every window is saturated.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use switchyard_crds::snapshot::LimitsSnapshot;

use crate::errors::{ApiError, ErrorKind};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Geometry of a sliding window, in nanoseconds.
#[derive(Clone, Copy, Debug)]
struct Spec {
    span: u64,
    slot: u64,
}

/// Per-minute windows: 60 s in 1 s slots.
const MINUTE: Spec = Spec {
    span: 60 * NANOS_PER_SEC,
    slot: NANOS_PER_SEC,
};

/// Per-day window: 24 h in 6 min slots.
const DAY: Spec = Spec {
    span: 86_400 * NANOS_PER_SEC,
    slot: 360 * NANOS_PER_SEC,
};

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `limits.requestsPerMinute`.
    WorkspaceRequestsPerMinute,
    /// `limits.tokensPerMinute`.
    WorkspaceTokensPerMinute,
    /// `limits.tokensPerDay`.
    WorkspaceTokensPerDay,
    /// `limits.perCaller.requestsPerMinute`.
    CallerRequestsPerMinute,
    /// `limits.perCaller.tokensPerMinute`.
    CallerTokensPerMinute,
    /// `limits.perCaller.tokensPerDay`.
    CallerTokensPerDay,
}

impl Limit {
    /// Human-readable name, e.g. `workspace requests per minute`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkspaceRequestsPerMinute => "workspace requests per minute",
            Self::WorkspaceTokensPerMinute => "workspace tokens per minute",
            Self::WorkspaceTokensPerDay => "workspace tokens per day",
            Self::CallerRequestsPerMinute => "caller requests per minute",
            Self::CallerTokensPerMinute => "caller tokens per minute",
            Self::CallerTokensPerDay => "caller tokens per day",
        }
    }

    /// Low-cardinality metric label, e.g. `workspace_requests_per_minute`.
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::WorkspaceRequestsPerMinute => "workspace_requests_per_minute",
            Self::WorkspaceTokensPerMinute => "workspace_tokens_per_minute",
            Self::WorkspaceTokensPerDay => "workspace_tokens_per_day",
            Self::CallerRequestsPerMinute => "caller_requests_per_minute",
            Self::CallerTokensPerMinute => "caller_tokens_per_minute",
            Self::CallerTokensPerDay => "caller_tokens_per_day",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request refused by a limit (the gateway's own refusal: 429, not an upstream failure).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{limit} limit of {configured} reached; retry after {}s", self.retry_after_secs())]
pub struct LimitExceeded {
    /// The limit that refused. When several refuse, the one that frees up last (the longest
    /// `retry_after`), so that retrying after `retry_after` can succeed.
    pub limit: Limit,
    /// Its configured value.
    pub configured: u64,
    /// Time until that limit admits again (never zero), assuming no other traffic.
    pub retry_after: Duration,
}

impl LimitExceeded {
    /// `retry_after` rounded up to whole seconds, at least 1 (for the `Retry-After` header).
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

impl From<&LimitExceeded> for ApiError {
    fn from(e: &LimitExceeded) -> Self {
        ApiError::new(ErrorKind::RateLimit, e.to_string())
            .code("rate_limit_exceeded")
            .retry_after(e.retry_after_secs())
    }
}

impl From<LimitExceeded> for ApiError {
    fn from(e: LimitExceeded) -> Self {
        Self::from(&e)
    }
}

/// Limiter settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Most workspace keys tracked at once.
    pub max_workspace_keys: usize,
    /// Most (workspace, caller) keys tracked at once.
    pub max_caller_keys: usize,
    /// How often `admit` sweeps out keys whose windows are all empty.
    pub sweep_interval: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            max_workspace_keys: 5_000,
            max_caller_keys: 20_000,
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// How many keys are tracked, and how many were evicted at the cap so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TrackedKeys {
    /// Workspace keys.
    pub workspaces: usize,
    /// (workspace, caller) keys.
    pub callers: usize,
    /// Keys evicted (state lost) because a table was full.
    pub evicted: u64,
}

/// Request and token limits for all workspaces and callers. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct Limiter {
    inner: Arc<Inner>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("config", &self.inner.config)
            .field("tracked", &self.tracked_keys())
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    config: LimiterConfig,
    /// Time zero of the window clock: the first `now` seen.
    base: OnceLock<Instant>,
    workspaces: Mutex<Table>,
    callers: Mutex<Table>,
}

impl Inner {
    /// Nanoseconds since the first `now` seen (earlier instants count as zero).
    fn nanos(&self, now: Instant) -> u64 {
        let base = *self.base.get_or_init(|| now);
        u64::try_from(now.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The three limits of one scope.
#[derive(Clone, Copy, Debug)]
struct ScopeLimits {
    requests_per_minute: Option<u64>,
    tokens_per_minute: Option<u64>,
    tokens_per_day: Option<u64>,
    names: [Limit; 3],
}

impl ScopeLimits {
    fn workspace(l: &LimitsSnapshot) -> Self {
        Self {
            requests_per_minute: l.requests_per_minute,
            tokens_per_minute: l.tokens_per_minute,
            tokens_per_day: l.tokens_per_day,
            names: [
                Limit::WorkspaceRequestsPerMinute,
                Limit::WorkspaceTokensPerMinute,
                Limit::WorkspaceTokensPerDay,
            ],
        }
    }

    fn caller(l: &LimitsSnapshot) -> Self {
        Self {
            requests_per_minute: l.caller_requests_per_minute,
            tokens_per_minute: l.caller_tokens_per_minute,
            tokens_per_day: l.caller_tokens_per_day,
            names: [
                Limit::CallerRequestsPerMinute,
                Limit::CallerTokensPerMinute,
                Limit::CallerTokensPerDay,
            ],
        }
    }

    fn any(&self) -> bool {
        self.requests_per_minute.is_some()
            || self.tokens_per_minute.is_some()
            || self.tokens_per_day.is_some()
    }

    fn charges_tokens(&self) -> bool {
        self.tokens_per_minute.is_some() || self.tokens_per_day.is_some()
    }
}

/// One slot of a window: an amount and the time of its latest event.
#[derive(Clone, Copy, Debug)]
struct Slot {
    last: u64,
    amount: u64,
}

/// A sliding window (see the module docs).
#[derive(Debug, Default)]
struct Window {
    slots: VecDeque<Slot>,
    total: u64,
}

impl Window {
    /// Drops the slots whose latest event is a full window old.
    fn expire(&mut self, now: u64, spec: Spec) {
        while let Some(front) = self.slots.front() {
            if front.last.saturating_add(spec.span) > now {
                break;
            }
            self.total = self.total.saturating_sub(front.amount);
            self.slots.pop_front();
        }
    }

    fn used(&mut self, now: u64, spec: Spec) -> u64 {
        self.expire(now, spec);
        self.total
    }

    fn add(&mut self, t: u64, amount: u64, spec: Spec) {
        if amount == 0 {
            return;
        }
        self.expire(t, spec);
        match self.slots.back_mut() {
            // Same slot, or an out-of-order event from an earlier slot (callers read the clock
            // before taking the lock): merged into the newest slot, which only delays its expiry.
            Some(back) if back.last / spec.slot >= t / spec.slot => {
                back.amount = back.amount.saturating_add(amount);
                back.last = back.last.max(t);
            }
            _ => self.slots.push_back(Slot { last: t, amount }),
        }
        self.total = self.total.saturating_add(amount);
    }

    /// Nanoseconds from `now` until `used < limit` (call after `used` returned `>= limit`).
    /// Never zero. A window that can never get below `limit` (limit 0) answers the full span.
    fn wait_below(&self, now: u64, limit: u64, spec: Spec) -> u64 {
        let must_free = self.total.saturating_sub(limit).saturating_add(1);
        let mut freed = 0u64;
        for slot in &self.slots {
            freed = freed.saturating_add(slot.amount);
            if freed >= must_free {
                return slot
                    .last
                    .saturating_add(spec.span)
                    .saturating_sub(now)
                    .max(1);
            }
        }
        spec.span
    }
}

/// The windows of one key.
#[derive(Debug, Default)]
struct KeyState {
    requests_per_minute: Option<Window>,
    tokens_per_minute: Option<Window>,
    tokens_per_day: Option<Window>,
    last_used: u64,
}

impl KeyState {
    /// True when no window holds anything at `now` (the key can be dropped without loss).
    fn is_idle(&mut self, now: u64) -> bool {
        [
            (&mut self.requests_per_minute, MINUTE),
            (&mut self.tokens_per_minute, MINUTE),
            (&mut self.tokens_per_day, DAY),
        ]
        .into_iter()
        .all(|(w, spec)| w.as_mut().is_none_or(|w| w.used(now, spec) == 0))
    }

    /// Checks the scope's limits; keeps in `refusal` the one freeing up last.
    fn check(&mut self, limits: &ScopeLimits, now: u64, refusal: &mut Option<LimitExceeded>) {
        let [rpm, tpm, tpd] = limits.names;
        for (window, configured, spec, name) in [
            (
                &mut self.requests_per_minute,
                limits.requests_per_minute,
                MINUTE,
                rpm,
            ),
            (
                &mut self.tokens_per_minute,
                limits.tokens_per_minute,
                MINUTE,
                tpm,
            ),
            (&mut self.tokens_per_day, limits.tokens_per_day, DAY, tpd),
        ] {
            let Some(limit) = configured else { continue };
            let window = window.get_or_insert_with(Window::default);
            if window.used(now, spec) < limit {
                continue;
            }
            let retry_after = Duration::from_nanos(window.wait_below(now, limit, spec));
            if refusal.as_ref().is_none_or(|r| retry_after > r.retry_after) {
                *refusal = Some(LimitExceeded {
                    limit: name,
                    configured: limit,
                    retry_after,
                });
            }
        }
    }

    /// Counts an admitted request (when a request limit is configured).
    fn admit(&mut self, limits: &ScopeLimits, now: u64) {
        if limits.requests_per_minute.is_some() {
            self.requests_per_minute
                .get_or_insert_with(Window::default)
                .add(now, 1, MINUTE);
        }
    }

    fn charge(&mut self, charge: &Charge, tokens: u64, now: u64) {
        if charge.per_minute {
            self.tokens_per_minute
                .get_or_insert_with(Window::default)
                .add(now, tokens, MINUTE);
        }
        if charge.per_day {
            self.tokens_per_day
                .get_or_insert_with(Window::default)
                .add(now, tokens, DAY);
        }
    }
}

/// The keys of one scope.
#[derive(Debug, Default)]
struct Table {
    keys: HashMap<String, KeyState>,
    last_sweep: u64,
    evicted: u64,
}

impl Table {
    fn maybe_sweep(&mut self, now: u64, interval: Duration) {
        let interval = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(self.last_sweep) >= interval {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: u64) {
        self.last_sweep = now;
        self.keys.retain(|_, state| !state.is_idle(now));
    }

    /// Makes room for one more key under `max`: sweeps, then evicts the least recently used
    /// 1/16 of the keys if still full.
    fn make_room(&mut self, now: u64, max: usize) {
        let max = max.max(1);
        if self.keys.len() < max {
            return;
        }
        self.sweep(now);
        if self.keys.len() < max {
            return;
        }
        let evict = (max / 16).max(1).min(self.keys.len());
        let mut ages: Vec<u64> = self.keys.values().map(|s| s.last_used).collect();
        let (_, cutoff, _) = ages.select_nth_unstable(evict - 1);
        let cutoff = *cutoff;
        let below = ages.iter().filter(|&&t| t < cutoff).count();
        let mut at_cutoff = evict - below;
        self.keys.retain(|_, s| {
            if s.last_used < cutoff {
                false
            } else if s.last_used == cutoff && at_cutoff > 0 {
                at_cutoff -= 1;
                false
            } else {
                true
            }
        });
        self.evicted += evict as u64;
        tracing::warn!(
            evicted = evict,
            max_keys = max,
            "rate-limit key table full: evicted the least recently used keys (their counts restart)"
        );
    }

    /// Runs `f` on the key's state, creating it (within the cap) if missing.
    fn with_key<R>(
        &mut self,
        key: &str,
        now: u64,
        max: usize,
        f: impl FnOnce(&mut KeyState) -> R,
    ) -> R {
        if !self.keys.contains_key(key) {
            self.make_room(now, max);
            self.keys.insert(key.to_owned(), KeyState::default());
        }
        let mut scratch = KeyState::default();
        let state = self.keys.get_mut(key).unwrap_or(&mut scratch);
        state.last_used = state.last_used.max(now);
        f(state)
    }

    /// Checks limits without creating a key. A refused key counts as used (for eviction order).
    fn check(
        &mut self,
        key: &str,
        limits: &ScopeLimits,
        now: u64,
        refusal: &mut Option<LimitExceeded>,
    ) {
        match self.keys.get_mut(key) {
            Some(state) => {
                state.last_used = state.last_used.max(now);
                state.check(limits, now, refusal);
            }
            // A key not seen yet has used nothing; only a limit of 0 refuses it.
            None => KeyState::default().check(limits, now, refusal),
        }
    }
}

/// Which token windows an admitted request charges, for one key.
#[derive(Debug)]
struct Charge {
    key: String,
    per_minute: bool,
    per_day: bool,
}

impl Charge {
    fn new(key: String, limits: &ScopeLimits) -> Option<Self> {
        limits.charges_tokens().then_some(Self {
            key,
            per_minute: limits.tokens_per_minute.is_some(),
            per_day: limits.tokens_per_day.is_some(),
        })
    }
}

/// An admitted request. Call [`Admission::charge`] with the tokens it used once known; dropping
/// it without charging charges nothing (the request itself was counted at admission).
#[must_use = "charge the tokens the request used"]
pub struct Admission {
    inner: Arc<Inner>,
    workspace: Option<Charge>,
    caller: Option<Charge>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("workspace", &self.workspace)
            .field("caller", &self.caller)
            .finish()
    }
}

impl Admission {
    /// Charges the tokens the request actually used (input + output) to the token limits that
    /// were configured when it was admitted. May take the usage over a limit (the overshoot is
    /// counted and refuses later requests until it leaves the window).
    pub fn charge(self, tokens: u64, now: Instant) {
        if tokens == 0 || (self.workspace.is_none() && self.caller.is_none()) {
            return;
        }
        let t = self.inner.nanos(now);
        let config = &self.inner.config;
        if let Some(c) = &self.workspace {
            lock(&self.inner.workspaces).with_key(&c.key, t, config.max_workspace_keys, |s| {
                s.charge(c, tokens, t)
            });
        }
        if let Some(c) = &self.caller {
            lock(&self.inner.callers).with_key(&c.key, t, config.max_caller_keys, |s| {
                s.charge(c, tokens, t)
            });
        }
    }
}

impl Limiter {
    /// A limiter with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A limiter with these settings.
    pub fn with_config(config: LimiterConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                ..Inner::default()
            }),
        }
    }

    /// Admits or refuses a request of `caller` (the initiator; `None` when unknown, in which case
    /// only the workspace limits apply) in `workspace` (its key) under `limits` (the workspace's
    /// limits in the current snapshot). An admitted request is counted at once; a refused one
    /// is not counted anywhere.
    pub fn admit(
        &self,
        workspace: &str,
        caller: Option<&str>,
        limits: &LimitsSnapshot,
        now: Instant,
    ) -> Result<Admission, LimitExceeded> {
        let ws_limits = ScopeLimits::workspace(limits);
        let caller_limits = ScopeLimits::caller(limits);
        let caller = caller.filter(|_| caller_limits.any());
        let mut admission = Admission {
            inner: self.inner.clone(),
            workspace: None,
            caller: None,
        };
        if !ws_limits.any() && caller.is_none() {
            return Ok(admission);
        }
        let t = self.inner.nanos(now);
        let config = &self.inner.config;
        // Lock order: workspaces, then callers (as in `Admission::charge`, which takes one at a
        // time). Both are held so that the check and the count are atomic.
        let mut workspaces = ws_limits.any().then(|| lock(&self.inner.workspaces));
        let mut callers = caller.map(|_| lock(&self.inner.callers));
        let caller_key = caller.map(|c| format!("{workspace}\u{0}{c}"));

        let mut refusal = None;
        if let Some(table) = workspaces.as_mut() {
            table.maybe_sweep(t, config.sweep_interval);
            table.check(workspace, &ws_limits, t, &mut refusal);
        }
        if let (Some(table), Some(key)) = (callers.as_mut(), caller_key.as_deref()) {
            table.maybe_sweep(t, config.sweep_interval);
            table.check(key, &caller_limits, t, &mut refusal);
        }
        if let Some(refusal) = refusal {
            return Err(refusal);
        }

        if let Some(table) = workspaces.as_mut() {
            table.with_key(workspace, t, config.max_workspace_keys, |s| {
                s.admit(&ws_limits, t)
            });
            admission.workspace = Charge::new(workspace.to_owned(), &ws_limits);
        }
        if let (Some(table), Some(key)) = (callers.as_mut(), caller_key) {
            table.with_key(&key, t, config.max_caller_keys, |s| {
                s.admit(&caller_limits, t)
            });
            admission.caller = Charge::new(key, &caller_limits);
        }
        Ok(admission)
    }

    /// Drops every key whose windows are all empty at `now` (`admit` also does this at most
    /// every `sweep_interval`).
    pub fn sweep(&self, now: Instant) {
        let t = self.inner.nanos(now);
        lock(&self.inner.workspaces).sweep(t);
        lock(&self.inner.callers).sweep(t);
    }

    /// Keys tracked and evicted, for metrics.
    pub fn tracked_keys(&self) -> TrackedKeys {
        let workspaces = lock(&self.inner.workspaces);
        let callers = lock(&self.inner.callers);
        TrackedKeys {
            workspaces: workspaces.keys.len(),
            callers: callers.keys.len(),
            evicted: workspaces.evicted + callers.evicted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "team/ws";

    fn rpm(n: u64) -> LimitsSnapshot {
        LimitsSnapshot {
            requests_per_minute: Some(n),
            ..LimitsSnapshot::default()
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ms(m: u64) -> Duration {
        Duration::from_millis(m)
    }

    fn admit_n(l: &Limiter, caller: Option<&str>, limits: &LimitsSnapshot, now: Instant, n: u64) {
        for i in 0..n {
            let r = l.admit(WS, caller, limits, now);
            assert!(r.is_ok(), "request {i} refused: {r:?}");
        }
    }

    #[test]
    fn no_limits_admits_everything_and_tracks_nothing() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = LimitsSnapshot::default();
        for _ in 0..10_000 {
            l.admit(WS, Some("alice"), &limits, t0)
                .unwrap()
                .charge(1_000_000, t0);
        }
        assert_eq!(l.tracked_keys(), TrackedKeys::default());
    }

    #[test]
    fn rpm_is_exact_at_the_boundary() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = rpm(600);
        admit_n(&l, None, &limits, t0, 600);
        let e = l.admit(WS, None, &limits, t0).unwrap_err();
        assert_eq!(e.limit, Limit::WorkspaceRequestsPerMinute);
        assert_eq!(e.configured, 600);
        assert_eq!(e.retry_after, secs(60));
        assert_eq!(
            e.to_string(),
            "workspace requests per minute limit of 600 reached; retry after 60s"
        );
        // One millisecond before the burst is a minute old: still refused, 1 ms to wait.
        let e = l
            .admit(WS, None, &limits, t0 + secs(60) - ms(1))
            .unwrap_err();
        assert_eq!(e.retry_after, ms(1));
        assert_eq!(e.retry_after_secs(), 1);
        // Exactly a minute later: the whole burst has left the window.
        admit_n(&l, None, &limits, t0 + secs(60), 600);
        assert!(l.admit(WS, None, &limits, t0 + secs(60)).is_err());
    }

    #[test]
    fn rpm_window_rolls() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = rpm(600);
        admit_n(&l, None, &limits, t0, 300);
        admit_n(&l, None, &limits, t0 + secs(30), 300);
        let e = l.admit(WS, None, &limits, t0 + secs(45)).unwrap_err();
        assert_eq!(e.retry_after, secs(15));
        // At 60 s the first 300 leave; the second 300 stay until 90 s.
        admit_n(&l, None, &limits, t0 + secs(60), 300);
        let e = l.admit(WS, None, &limits, t0 + secs(60)).unwrap_err();
        assert_eq!(e.retry_after, secs(30));
        admit_n(&l, None, &limits, t0 + secs(90), 300);
        assert!(l.admit(WS, None, &limits, t0 + secs(90)).is_err());
    }

    #[test]
    fn rpm_never_exceeds_limit_in_any_rolling_minute() {
        // Pseudo-random arrivals (with bursts) over 10 minutes at a far higher rate than allowed.
        let l = Limiter::new();
        let t0 = Instant::now();
        let limit = 120;
        let limits = rpm(limit);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut at = 0u64; // ms
        let mut admitted = Vec::new();
        while at < 600_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            at += seed % 400; // mean gap 200 ms: ~300 requests per minute offered
            if l.admit(WS, None, &limits, t0 + ms(at)).is_ok() {
                admitted.push(at);
            }
        }
        for (i, &start) in admitted.iter().enumerate() {
            let in_window = admitted[i..]
                .iter()
                .take_while(|&&t| t < start + 60_000)
                .count();
            assert!(
                in_window as u64 <= limit,
                "{in_window} in the minute from {start} ms"
            );
        }
        // Precision: at most one slot (1 s) late per minute, so nearly the full rate is admitted.
        assert!(
            admitted.len() as u64 >= 10 * limit * 59 / 61,
            "only {} admitted",
            admitted.len()
        );
    }

    #[test]
    fn events_in_one_slot_expire_with_its_latest() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = rpm(2);
        admit_n(&l, None, &limits, t0, 1);
        admit_n(&l, None, &limits, t0 + ms(900), 1);
        // The first request is 60.1 s old but shares its 1 s slot with one 59.2 s old: the
        // slot is freed 60 s after its latest request (conservative by less than one slot).
        let e = l.admit(WS, None, &limits, t0 + ms(60_100)).unwrap_err();
        assert_eq!(e.retry_after, ms(800));
        admit_n(&l, None, &limits, t0 + ms(60_900), 2);
    }

    #[test]
    fn refused_requests_are_not_counted() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = LimitsSnapshot {
            requests_per_minute: Some(2),
            caller_requests_per_minute: Some(2),
            ..LimitsSnapshot::default()
        };
        admit_n(&l, Some("a"), &limits, t0, 2);
        for i in 0..100 {
            assert!(l.admit(WS, Some("a"), &limits, t0 + secs(i % 60)).is_err());
        }
        // Had the refusals counted, the window would still be full at 60 s.
        admit_n(&l, Some("a"), &limits, t0 + secs(60), 2);
    }

    #[test]
    fn caller_and_workspace_limits_both_apply() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = LimitsSnapshot {
            requests_per_minute: Some(5),
            caller_requests_per_minute: Some(2),
            ..LimitsSnapshot::default()
        };
        // The caller limit is the tighter one for a single caller.
        admit_n(&l, Some("a"), &limits, t0, 2);
        let e = l.admit(WS, Some("a"), &limits, t0).unwrap_err();
        assert_eq!(e.limit, Limit::CallerRequestsPerMinute);
        assert_eq!(e.configured, 2);
        // Other callers have their own budget; a's refusal did not use the workspace's.
        admit_n(&l, Some("b"), &limits, t0, 2);
        admit_n(&l, Some("c"), &limits, t0, 1);
        // Now the workspace limit (5) is the tighter one.
        let e = l.admit(WS, Some("c"), &limits, t0).unwrap_err();
        assert_eq!(e.limit, Limit::WorkspaceRequestsPerMinute);
        assert_eq!(e.configured, 5);
        let e = l.admit(WS, Some("d"), &limits, t0).unwrap_err();
        assert_eq!(e.limit, Limit::WorkspaceRequestsPerMinute);
        // The same caller name in another workspace is another caller.
        assert!(l.admit("team/other", Some("a"), &limits, t0).is_ok());
    }

    #[test]
    fn unknown_caller_gets_only_workspace_limits() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = LimitsSnapshot {
            caller_requests_per_minute: Some(1),
            ..LimitsSnapshot::default()
        };
        admit_n(&l, None, &limits, t0, 50);
        assert_eq!(l.tracked_keys(), TrackedKeys::default());
    }

    #[test]
    fn tokens_block_only_once_the_budget_is_exhausted() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = LimitsSnapshot {
            tokens_per_minute: Some(1_000),
            ..LimitsSnapshot::default()
        };
        // In-flight requests are not charged yet: many may start on a fresh budget.
        let first = l.admit(WS, None, &limits, t0).unwrap();
        let second = l.admit(WS, None, &limits, t0).unwrap();
        first.charge(600, t0 + secs(1));
        // 400 left: still admitted.
        let third = l.admit(WS, None, &limits, t0 + secs(2)).unwrap();
        // The response overshoots the budget by its own size: 1 200 of 1 000.
        second.charge(600, t0 + secs(3));
        let e = l.admit(WS, None, &limits, t0 + secs(4)).unwrap_err();
        assert_eq!(e.limit, Limit::WorkspaceTokensPerMinute);
        assert_eq!(e.configured, 1_000);
        // 1 200 - 600 (charged at 1 s, leaves at 61 s) = 600 < 1 000.
        assert_eq!(e.retry_after, secs(57));
        third.charge(0, t0 + secs(5));
        assert!(l.admit(WS, None, &limits, t0 + secs(61) - ms(1)).is_err());
        assert!(l.admit(WS, None, &limits, t0 + secs(61)).is_ok());
    }

    #[test]
    fn exactly_exhausted_budget_refuses() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = LimitsSnapshot {
            caller_tokens_per_minute: Some(100),
            ..LimitsSnapshot::default()
        };
        l.admit(WS, Some("a"), &limits, t0).unwrap().charge(99, t0);
        l.admit(WS, Some("a"), &limits, t0).unwrap().charge(1, t0);
        let e = l.admit(WS, Some("a"), &limits, t0).unwrap_err();
        assert_eq!(e.limit, Limit::CallerTokensPerMinute);
        assert_eq!(e.retry_after, secs(60));
        assert!(l.admit(WS, Some("b"), &limits, t0).is_ok());
    }

    #[test]
    fn dropped_admission_charges_nothing() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = LimitsSnapshot {
            tokens_per_minute: Some(10),
            ..LimitsSnapshot::default()
        };
        for _ in 0..100 {
            drop(l.admit(WS, None, &limits, t0).unwrap());
        }
        l.admit(WS, None, &limits, t0).unwrap().charge(9, t0);
        assert!(l.admit(WS, None, &limits, t0).is_ok());
    }

    #[test]
    fn tokens_per_day_window() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let hour = secs(3_600);
        let limits = LimitsSnapshot {
            tokens_per_minute: Some(1_000_000),
            tokens_per_day: Some(10_000),
            caller_tokens_per_day: Some(8_000),
            ..LimitsSnapshot::default()
        };
        l.admit(WS, Some("a"), &limits, t0)
            .unwrap()
            .charge(6_000, t0);
        l.admit(WS, Some("b"), &limits, t0 + hour)
            .unwrap()
            .charge(4_000, t0 + hour);
        // The per-minute budget is fine; the day's is spent.
        let e = l.admit(WS, Some("c"), &limits, t0 + 2 * hour).unwrap_err();
        assert_eq!(e.limit, Limit::WorkspaceTokensPerDay);
        assert_eq!(e.configured, 10_000);
        assert_eq!(e.retry_after, 22 * hour);
        assert!(
            l.admit(WS, Some("c"), &limits, t0 + 24 * hour - ms(1))
                .is_err()
        );
        // 24 h after the first charge, its 6 000 tokens leave the window.
        l.admit(WS, Some("c"), &limits, t0 + 24 * hour)
            .unwrap()
            .charge(6_000, t0 + 24 * hour);
        let e = l.admit(WS, Some("c"), &limits, t0 + 24 * hour).unwrap_err();
        assert_eq!(e.limit, Limit::WorkspaceTokensPerDay);
        assert_eq!(e.retry_after, hour);
    }

    #[test]
    fn retry_after_reports_the_limit_that_frees_last() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = LimitsSnapshot {
            requests_per_minute: Some(1),
            tokens_per_day: Some(100),
            caller_requests_per_minute: Some(1),
            ..LimitsSnapshot::default()
        };
        l.admit(WS, Some("a"), &limits, t0).unwrap().charge(50, t0);
        // Workspace and caller rpm both refuse, equally: the workspace one is reported.
        let e = l.admit(WS, Some("a"), &limits, t0 + secs(10)).unwrap_err();
        assert_eq!(e.limit, Limit::WorkspaceRequestsPerMinute);
        assert_eq!(e.retry_after, secs(50));
        l.admit(WS, Some("a"), &limits, t0 + secs(60))
            .unwrap()
            .charge(50, t0 + secs(60));
        // rpm frees at 120 s, the day budget in a day: the day limit is the one to report. Both
        // charges share one 6 min slot, which leaves the window a day after the later one.
        let e = l.admit(WS, Some("a"), &limits, t0 + secs(70)).unwrap_err();
        assert_eq!(e.limit, Limit::WorkspaceTokensPerDay);
        assert_eq!(e.retry_after, secs(86_400 + 60 - 70));
    }

    #[test]
    fn retry_after_secs_rounds_up_to_at_least_one() {
        let e = |retry_after| LimitExceeded {
            limit: Limit::CallerTokensPerMinute,
            configured: 1,
            retry_after,
        };
        assert_eq!(e(Duration::from_nanos(1)).retry_after_secs(), 1);
        assert_eq!(e(ms(999)).retry_after_secs(), 1);
        assert_eq!(e(secs(1)).retry_after_secs(), 1);
        assert_eq!(e(ms(1_001)).retry_after_secs(), 2);
        assert_eq!(e(secs(60)).retry_after_secs(), 60);
        let api = ApiError::from(e(ms(2_500)));
        assert_eq!(api.kind, ErrorKind::RateLimit);
        assert_eq!(api.retry_after, Some(3));
        assert_eq!(api.code, Some("rate_limit_exceeded"));
        assert!(api.message.contains("caller tokens per minute limit of 1"));
    }

    #[test]
    fn zero_limit_refuses_everything() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let e = l.admit(WS, None, &rpm(0), t0).unwrap_err();
        assert_eq!(e.configured, 0);
        assert_eq!(e.retry_after, secs(60));
        let limits = LimitsSnapshot {
            caller_tokens_per_day: Some(0),
            ..LimitsSnapshot::default()
        };
        let e = l.admit(WS, Some("a"), &limits, t0).unwrap_err();
        assert_eq!(e.limit, Limit::CallerTokensPerDay);
        assert_eq!(e.retry_after, secs(86_400));
    }

    #[test]
    fn limits_changed_between_calls_apply_immediately() {
        let l = Limiter::new();
        let t0 = Instant::now();
        admit_n(&l, None, &rpm(10), t0, 5);
        // Lowered: the 5 already counted exhaust it.
        assert!(l.admit(WS, None, &rpm(5), t0 + secs(1)).is_err());
        // Raised: 3 more fit.
        admit_n(&l, None, &rpm(8), t0 + secs(2), 3);
        assert!(l.admit(WS, None, &rpm(8), t0 + secs(2)).is_err());
        // Removed: unlimited and not counted; restored: what was counted before still counts.
        admit_n(&l, None, &LimitsSnapshot::default(), t0 + secs(3), 100);
        assert!(l.admit(WS, None, &rpm(8), t0 + secs(3)).is_err());
        admit_n(&l, None, &rpm(9), t0 + secs(3), 1);
        // A token limit added later counts from then on.
        let tokens = LimitsSnapshot {
            tokens_per_minute: Some(100),
            ..LimitsSnapshot::default()
        };
        l.admit(WS, None, &tokens, t0 + secs(4))
            .unwrap()
            .charge(100, t0 + secs(4));
        assert!(l.admit(WS, None, &tokens, t0 + secs(5)).is_err());
        // Raised in the next snapshot: admitted at once.
        let raised = LimitsSnapshot {
            tokens_per_minute: Some(101),
            ..LimitsSnapshot::default()
        };
        assert!(l.admit(WS, None, &raised, t0 + secs(5)).is_ok());
    }

    #[test]
    fn idle_keys_are_dropped() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let minute_only = LimitsSnapshot {
            requests_per_minute: Some(100),
            caller_requests_per_minute: Some(10),
            ..LimitsSnapshot::default()
        };
        for caller in ["a", "b", "c"] {
            admit_n(&l, Some(caller), &minute_only, t0, 1);
        }
        let daily = LimitsSnapshot {
            caller_tokens_per_day: Some(1_000),
            ..LimitsSnapshot::default()
        };
        l.admit(WS, Some("d"), &daily, t0).unwrap().charge(10, t0);
        let tracked = l.tracked_keys();
        assert_eq!((tracked.workspaces, tracked.callers), (1, 4));
        // Before a minute: nothing can be dropped without losing counts.
        l.sweep(t0 + secs(59));
        assert_eq!(l.tracked_keys().callers, 4);
        // After a minute only the key holding day tokens is left.
        l.sweep(t0 + secs(60));
        let tracked = l.tracked_keys();
        assert_eq!((tracked.workspaces, tracked.callers), (0, 1));
        l.sweep(t0 + secs(86_400) - ms(1));
        assert_eq!(l.tracked_keys().callers, 1);
        // `admit` sweeps on its own (at most every `sweep_interval`): a day after its charge,
        // "d" is gone.
        admit_n(&l, Some("e"), &minute_only, t0 + secs(86_400) + secs(60), 1);
        let tracked = l.tracked_keys();
        assert_eq!((tracked.workspaces, tracked.callers), (1, 1));
        assert_eq!(tracked.evicted, 0);
    }

    #[test]
    fn key_cap_evicts_the_least_recently_used() {
        let l = Limiter::with_config(LimiterConfig {
            max_caller_keys: 32,
            // Only the sweep made at the cap runs in this test.
            sweep_interval: secs(86_400),
            ..LimiterConfig::default()
        });
        let t0 = Instant::now();
        let limits = LimitsSnapshot {
            caller_requests_per_minute: Some(1),
            ..LimitsSnapshot::default()
        };
        for i in 0..32 {
            admit_n(&l, Some(&format!("c{i}")), &limits, t0 + ms(i), 1);
        }
        assert_eq!(l.tracked_keys().callers, 32);
        // c0 is refused at 100 ms: refused callers count as recently used, so c1 and c2 are now
        // the least recently used.
        assert!(l.admit(WS, Some("c0"), &limits, t0 + ms(100)).is_err());
        // A new caller at the cap: nothing is idle, so the least recently used 32/16 = 2 keys
        // are evicted.
        admit_n(&l, Some("new"), &limits, t0 + ms(200), 1);
        let tracked = l.tracked_keys();
        assert_eq!((tracked.callers, tracked.evicted), (31, 2));
        // Evicted keys lost their counts (c1 is admitted again); the others kept theirs.
        admit_n(&l, Some("c1"), &limits, t0 + ms(300), 1);
        assert_eq!(l.tracked_keys().callers, 32);
        for c in ["c0", "c3", "c31", "new", "c1"] {
            assert!(l.admit(WS, Some(c), &limits, t0 + ms(300)).is_err(), "{c}");
        }
        // Idle keys are swept before anything is evicted: at 120 s all 32 are idle, so the
        // first 32 new callers evict nothing; the 8 beyond them evict 2 keys per 2 callers.
        for i in 0..40 {
            admit_n(&l, Some(&format!("late{i}")), &limits, t0 + secs(120), 1);
            assert!(l.tracked_keys().callers <= 32);
        }
        let tracked = l.tracked_keys();
        assert_eq!((tracked.callers, tracked.evicted), (32, 2 + 8));
    }

    #[test]
    fn out_of_order_instants_are_counted_conservatively() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let limits = rpm(2);
        admit_n(&l, None, &limits, t0 + secs(10), 1);
        // A request that read the clock earlier but took the lock later.
        admit_n(&l, None, &limits, t0 + secs(5), 1);
        let e = l.admit(WS, None, &limits, t0 + secs(65)).unwrap_err();
        assert_eq!(e.retry_after, secs(5));
        admit_n(&l, None, &limits, t0 + secs(70), 2);
    }
}
