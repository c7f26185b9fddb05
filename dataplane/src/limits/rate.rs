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
mod tests;
