//! Retries before the first byte reached the caller (docs/architecture.md, "The request path"): which
//! failures are worth retrying, how long to wait, and a budget that keeps retries a bounded
//! fraction of traffic so a failing upstream is not hammered.
//!
//! - [`retryable`]: connect errors, timeouts before the first byte, and 429, 502, 503, 504, 529.
//!   **500 is not retried** on the same target: for LLM APIs a 500 is often tied to the request
//!   itself (it would fail again and may be billed again), so it counts against the circuit breaker
//!   and the proxy moves to the fallback target instead. Other 4xx/5xx are not retried either.
//! - [`backoff`]: full jitter over a doubling ceiling capped at `maxBackoff`; a longer
//!   `Retry-After` wins, up to [`MAX_RETRY_AFTER`] (longer: do not retry this target).
//! - [`RetryBudget`]: a token bucket. Each original request deposits `budgetPercent / 100`
//!   tokens, each retry withdraws one, and a floor of [`DEFAULT_FLOOR_PER_SECOND`] token per
//!   second lets low traffic retry too. The balance starts at one token (the first failure after
//!   a start can be retried) and is capped, so over any run
//!   `retries <= 1 + ratio * requests + floor * seconds`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use switchyard_crds::snapshot::RetriesSnapshot;

/// Retry tokens the floor adds per second (per budget, i.e. per RouterPolicy).
pub const DEFAULT_FLOOR_PER_SECOND: f64 = 1.0;

/// Most tokens a budget holds: what a burst of failures after a quiet period may spend at once.
pub const DEFAULT_MAX_BALANCE: f64 = 10.0;

/// Longest `Retry-After` honoured; a longer one means the target is not retried.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Whether a failed attempt may be retried: connect errors, timeouts before the first byte, and
/// statuses 429, 502, 503, 504 and 529 (Anthropic "overloaded"). 500 and every other status are
/// not (see the module docs). Only call this before any byte reached the caller.
pub fn retryable(
    status: Option<u16>,
    connect_error: bool,
    timeout_before_first_byte: bool,
) -> bool {
    connect_error
        || timeout_before_first_byte
        || matches!(status, Some(429 | 502 | 503 | 504 | 529))
}

/// A source of random 64-bit numbers for jitter. Implemented by [`SplitMix64`] and by any
/// `FnMut() -> u64`.
pub trait Rng64 {
    /// The next random number.
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> Rng64 for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// A small, fast, non-cryptographic generator (SplitMix64), good enough for jitter.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Seeded from the process's random hash keys and the clock.
    pub fn from_entropy() -> Self {
        Self(RandomState::new().hash_one(Instant::now()))
    }
}

impl Rng64 for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// How long to wait before retry number `attempt` (1 for the first retry; 0 is taken as 1).
///
/// Full jitter: uniform in `[0, min(max, base * 2^(attempt-1))]`. A `retry_after` longer than
/// that wins. `None` when `retry_after` exceeds [`MAX_RETRY_AFTER`]: do not retry this target.
pub fn backoff<R: Rng64 + ?Sized>(
    attempt: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
    rng: &mut R,
) -> Option<Duration> {
    if retry_after.is_some_and(|ra| ra > MAX_RETRY_AFTER) {
        return None;
    }
    let doublings = attempt.saturating_sub(1).min(31);
    let ceiling = base.saturating_mul(1 << doublings).min(max);
    let ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    // Uniform in [0, ceiling_ns] by multiply-shift.
    let pick = (u128::from(rng.next_u64()) * (u128::from(ceiling_ns) + 1)) >> 64;
    let jittered = Duration::from_nanos(u64::try_from(pick).unwrap_or(ceiling_ns));
    Some(retry_after.map_or(jittered, |ra| jittered.max(ra)))
}

/// [`backoff`] with a RouterPolicy's `backoff` and `maxBackoff`.
pub fn backoff_for<R: Rng64 + ?Sized>(
    retries: &RetriesSnapshot,
    attempt: u32,
    retry_after: Option<Duration>,
    rng: &mut R,
) -> Option<Duration> {
    backoff(
        attempt,
        Duration::from_millis(retries.backoff_ms),
        Duration::from_millis(retries.max_backoff_ms),
        retry_after,
        rng,
    )
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP-date (IMF-fixdate, plus the obsolete
/// RFC 850 and asctime forms recipients must accept). A date in the past gives zero. `None`
/// when the value is neither.
pub fn parse_retry_after(header: &str, now: SystemTime) -> Option<Duration> {
    let value = header.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: a number too large for u64 is still "a very long time".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = http_date(value)?;
    Some(at.duration_since(now).unwrap_or_default())
}

fn http_date(value: &str) -> Option<SystemTime> {
    use jiff::fmt::{rfc2822, strtime};
    use jiff::tz::TimeZone;
    // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
    if let Ok(ts) = rfc2822::DateTimeParser::new().parse_timestamp(value) {
        return Some(ts.into());
    }
    // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`; asctime: `Sun Nov  6 08:49:37 1994`.
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|fmt| {
            let dt = strtime::parse(fmt, value).ok()?.to_datetime().ok()?;
            dt.to_zoned(TimeZone::UTC).ok()
        })
        .map(|z| z.timestamp().into())
}

#[derive(Debug)]
struct BudgetInner {
    ratio: f64,
    balance: f64,
    last: Instant,
}

/// A retry token bucket (see the module docs). One per RouterPolicy (see [`RetryBudgets`]).
#[derive(Debug)]
pub struct RetryBudget {
    floor_per_second: f64,
    max_balance: f64,
    inner: Mutex<BudgetInner>,
}

impl RetryBudget {
    /// A budget of `budget_percent` of the requests, with the default floor and cap.
    pub fn new(budget_percent: u32, now: Instant) -> Self {
        Self::with_limits(
            budget_percent,
            DEFAULT_FLOOR_PER_SECOND,
            DEFAULT_MAX_BALANCE,
            now,
        )
    }

    /// A budget with an explicit floor (tokens per second) and cap (at least one token).
    pub fn with_limits(
        budget_percent: u32,
        floor_per_second: f64,
        max_balance: f64,
        now: Instant,
    ) -> Self {
        Self {
            floor_per_second: floor_per_second.max(0.0),
            max_balance: max_balance.max(1.0),
            inner: Mutex::new(BudgetInner {
                ratio: ratio(budget_percent),
                // max_balance is at least one token.
                balance: 1.0,
                last: now,
            }),
        }
    }

    /// Changes the percent, keeping the balance.
    pub fn set_percent(&self, budget_percent: u32) {
        self.lock().ratio = ratio(budget_percent);
    }

    /// Counts an original request (not a retry).
    pub fn deposit(&self, now: Instant) {
        let mut inner = self.lock();
        self.refill(&mut inner, now);
        inner.balance = (inner.balance + inner.ratio).min(self.max_balance);
    }

    /// Takes a token for one retry; `false`: over budget, do not retry.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        self.refill(&mut inner, now);
        if inner.balance >= 1.0 {
            inner.balance -= 1.0;
            true
        } else {
            false
        }
    }

    /// Tokens available now.
    pub fn balance(&self, now: Instant) -> f64 {
        let mut inner = self.lock();
        self.refill(&mut inner, now);
        inner.balance
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetInner> {
        // Plain numbers, consistent between statements: a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refill(&self, inner: &mut BudgetInner, now: Instant) {
        if now > inner.last {
            let elapsed = (now - inner.last).as_secs_f64();
            inner.balance = (inner.balance + elapsed * self.floor_per_second).min(self.max_balance);
            inner.last = now;
        }
    }
}

fn ratio(budget_percent: u32) -> f64 {
    f64::from(budget_percent.min(100)) / 100.0
}

/// One [`RetryBudget`] per RouterPolicy key, surviving snapshot swaps.
#[derive(Debug, Default)]
pub struct RetryBudgets {
    budgets: RwLock<HashMap<String, Arc<RetryBudget>>>,
}

impl RetryBudgets {
    /// The budget of `policy`, created on first use; an existing one takes `budget_percent`.
    pub fn budget(&self, policy: &str, budget_percent: u32, now: Instant) -> Arc<RetryBudget> {
        let existing = self
            .budgets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(policy)
            .cloned();
        let budget = match existing {
            Some(b) => b,
            None => self
                .budgets
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(policy.to_owned())
                .or_insert_with(|| Arc::new(RetryBudget::new(budget_percent, now)))
                .clone(),
        };
        budget.set_percent(budget_percent);
        budget
    }

    /// Keeps only the budgets of the given policy keys.
    pub fn retain<'a>(&self, policies: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = policies.into_iter().collect();
        self.budgets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k, _| keep.contains(k.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Runs `seconds` of traffic at `interval` against an upstream that always fails; each
    /// request retries up to `max_retries` times when the budget allows. Returns (requests,
    /// attempts).
    fn always_failing(
        budget: &RetryBudget,
        t0: Instant,
        seconds: u64,
        interval: Duration,
        max_retries: u32,
    ) -> (u64, u64) {
        let (mut requests, mut attempts) = (0u64, 0u64);
        let mut now = t0;
        while now < t0 + Duration::from_secs(seconds) {
            requests += 1;
            attempts += 1;
            budget.deposit(now);
            for _ in 0..max_retries {
                if !retryable(Some(503), false, false) || !budget.try_withdraw(now) {
                    break;
                }
                attempts += 1;
            }
            now += interval;
        }
        (requests, attempts)
    }

    #[test]
    fn budget_bounds_retries_against_an_always_failing_upstream() {
        for (percent, interval_ms) in [(20, 10), (20, 1), (50, 3), (0, 10), (100, 7)] {
            let t0 = Instant::now();
            let budget = RetryBudget::new(percent, t0);
            let seconds = 120;
            let (requests, attempts) = always_failing(&budget, t0, seconds, interval_ms * MS, 3);
            let ratio = f64::from(percent) / 100.0;
            let bound =
                1.0 + requests as f64 * (1.0 + ratio) + DEFAULT_FLOOR_PER_SECOND * seconds as f64;
            assert!(
                attempts as f64 <= bound + 1e-6,
                "{percent}%: {attempts} attempts for {requests} requests > {bound}"
            );
            // And the budget is actually used (not just refused).
            let retries = (attempts - requests) as f64;
            assert!(
                retries >= requests as f64 * ratio * 0.95,
                "{percent}%: only {retries} retries for {requests} requests"
            );
        }
    }

    #[test]
    fn floor_lets_low_traffic_retry() {
        let t0 = Instant::now();
        let budget = RetryBudget::new(20, t0);
        // One request every 2 s: deposits alone (0.2 each) would allow a retry every 10 s.
        let (requests, attempts) = always_failing(&budget, t0, 60, 2000 * MS, 1);
        assert_eq!(requests, 30);
        assert!(attempts - requests >= 29, "{attempts}");
        assert!(attempts as f64 <= requests as f64 * 1.2 + 60.0);
    }

    #[test]
    fn budget_balance_is_bounded_and_starts_with_one_token() {
        let t0 = Instant::now();
        let budget = RetryBudget::new(100, t0);
        assert!(
            budget.try_withdraw(t0),
            "the first failure after a start may be retried"
        );
        assert!(!budget.try_withdraw(t0));
        for _ in 0..1000 {
            budget.deposit(t0);
        }
        let later = t0 + Duration::from_secs(3600);
        assert!((budget.balance(later) - DEFAULT_MAX_BALANCE).abs() < 1e-9);
        let granted = (0..100).filter(|_| budget.try_withdraw(later)).count();
        assert_eq!(granted, DEFAULT_MAX_BALANCE as usize);
    }

    #[test]
    fn budget_percent_change_keeps_balance() {
        let t0 = Instant::now();
        let budgets = RetryBudgets::default();
        let b = budgets.budget("ns/p", 50, t0);
        assert!(b.try_withdraw(t0), "the starting token");
        b.deposit(t0);
        b.deposit(t0);
        let same = budgets.budget("ns/p", 0, t0);
        assert!(Arc::ptr_eq(&b, &same));
        assert!(same.try_withdraw(t0));
        same.deposit(t0);
        assert!(!same.try_withdraw(t0));
        budgets.retain(["ns/other"]);
        assert!(!Arc::ptr_eq(&b, &budgets.budget("ns/p", 50, t0)));
    }

    #[test]
    fn backoff_full_jitter_stays_within_bounds() {
        let mut rng = SplitMix64::new(42);
        let base = 100 * MS;
        let max = 2000 * MS;
        for attempt in 1..=8u32 {
            let ceiling = (base * 2u32.pow(attempt - 1)).min(max);
            let draws: Vec<Duration> = (0..2000)
                .map(|_| backoff(attempt, base, max, None, &mut rng).unwrap())
                .collect();
            assert!(draws.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            // Spread over the whole range, not clustered.
            assert!(draws.iter().any(|d| *d < ceiling / 10));
            assert!(draws.iter().any(|d| *d > ceiling * 9 / 10));
        }
    }

    #[test]
    fn backoff_doubles_and_caps_at_max() {
        let base = 100 * MS;
        let max = 1000 * MS;
        // The largest draw shows the ceiling.
        let mut top = || u64::MAX;
        assert_eq!(backoff(0, base, max, None, &mut top), Some(base));
        assert_eq!(backoff(1, base, max, None, &mut top), Some(base));
        assert_eq!(backoff(2, base, max, None, &mut top), Some(200 * MS));
        assert_eq!(backoff(4, base, max, None, &mut top), Some(800 * MS));
        assert_eq!(backoff(5, base, max, None, &mut top), Some(max));
        assert_eq!(backoff(u32::MAX, base, max, None, &mut top), Some(max));
        let mut bottom = || 0;
        assert_eq!(
            backoff(3, base, max, None, &mut bottom),
            Some(Duration::ZERO)
        );
        let policy = RetriesSnapshot::default();
        assert_eq!(
            backoff_for(&policy, 10, None, &mut top),
            Some(Duration::from_millis(policy.max_backoff_ms))
        );
    }

    #[test]
    fn backoff_honours_a_longer_retry_after() {
        let base = 100 * MS;
        let max = 1000 * MS;
        let mut rng = SplitMix64::from_entropy();
        let ra = Some(Duration::from_secs(5));
        assert_eq!(backoff(1, base, max, ra, &mut rng), ra);
        // Shorter than the jittered delay: the delay wins.
        let mut top = || u64::MAX;
        assert_eq!(
            backoff(4, base, max, Some(10 * MS), &mut top),
            Some(800 * MS)
        );
        assert_eq!(
            backoff(1, base, max, Some(MAX_RETRY_AFTER), &mut top),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            backoff(1, base, max, Some(MAX_RETRY_AFTER + MS), &mut top),
            None
        );
    }

    #[test]
    fn parse_retry_after_seconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "  ", "-5", "1.5", "soon", "12s"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn parse_retry_after_http_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let now = at - Duration::from_secs(90);
        for value in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(value, now),
                Some(Duration::from_secs(90)),
                "{value}"
            );
        }
        // In the past: retry now.
        let later = at + Duration::from_secs(5);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 32 Nov 1994 08:49:37 GMT", now),
            None
        );
    }

    #[test]
    fn retryable_statuses_and_errors() {
        for s in [429, 502, 503, 504, 529] {
            assert!(retryable(Some(s), false, false), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 408, 413, 422, 500, 501, 505] {
            assert!(!retryable(Some(s), false, false), "{s}");
        }
        assert!(retryable(None, true, false));
        assert!(retryable(None, false, true));
        assert!(!retryable(None, false, false));
    }
}
