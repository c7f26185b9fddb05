//! Backend `maxConcurrency`: at most `max` requests in flight per backend, more wait in a bounded
//! FIFO queue for at most `queue_timeout`, the rest are refused at once.
//!
//! Built on a fair [`tokio::sync::Semaphore`] per backend (waiters are served in arrival order;
//! a dropped waiter leaves the queue, and a slot handed to a waiter that was dropped at the same
//! moment goes back to the semaphore, so nothing leaks). A changed `max` applies to acquisitions
//! from then on: raising it adds slots at once; lowering it takes free slots away at once and the
//! others as their requests finish, so in-flight requests are never cut off.
//!
//! Memory: one small entry per backend key seen with a limit (backend keys come from the
//! snapshot); [`ConcurrencyLimiter::prune_idle`] drops the idle ones.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

use crate::errors::{ApiError, ErrorKind};

/// Concurrency limiter settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    /// Most requests waiting per backend; `None` means as many as the backend's `max`.
    pub queue_len: Option<u32>,
    /// Longest wait in the queue.
    pub queue_timeout: Duration,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        Self {
            queue_len: None,
            queue_timeout: Duration::from_secs(5),
        }
    }
}

/// A backend refused by its concurrency limit (the gateway's own refusal: 503, not an upstream
/// failure, so a circuit breaker must not count it; the proxy may fall back to another target).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Saturated {
    /// All slots busy and the wait queue full: refused without waiting.
    #[error("backend busy: {max} requests in flight and {queue_len} waiting")]
    QueueFull {
        /// The backend's `maxConcurrency`.
        max: u32,
        /// The queue length.
        queue_len: u32,
    },
    /// Waited in the queue for `waited` without getting a slot.
    #[error("backend busy: no slot of {max} freed within {}ms", waited.as_millis())]
    TimedOut {
        /// The backend's `maxConcurrency`.
        max: u32,
        /// How long the request waited.
        waited: Duration,
    },
}

impl Saturated {
    /// Low-cardinality metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::QueueFull { .. } => "queue_full",
            Self::TimedOut { .. } => "queue_timeout",
        }
    }
}

impl From<&Saturated> for ApiError {
    fn from(e: &Saturated) -> Self {
        ApiError::new(ErrorKind::Unavailable, e.to_string())
            .code("backend_saturated")
            .retry_after(1)
    }
}

impl From<Saturated> for ApiError {
    fn from(e: Saturated) -> Self {
        Self::from(&e)
    }
}

/// Per-backend concurrency limits. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct ConcurrencyLimiter {
    inner: Arc<Inner>,
}

impl fmt::Debug for ConcurrencyLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimiter")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    config: ConcurrencyConfig,
    backends: Mutex<HashMap<String, Arc<Backend>>>,
}

struct Backend {
    semaphore: Arc<Semaphore>,
    state: Mutex<BackendState>,
}

struct BackendState {
    /// Current `max`.
    max: u32,
    /// Slots to take away as in-flight requests finish (after `max` was lowered).
    debt: u32,
    /// Requests in the queue.
    waiting: u32,
}

impl Backend {
    fn new(max: u32) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(max as usize)),
            state: Mutex::new(BackendState {
                max,
                debt: 0,
                waiting: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, BackendState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a new `max`.
    fn resize(&self, state: &mut BackendState, max: u32) {
        if max > state.max {
            let more = max - state.max;
            let repaid = more.min(state.debt);
            state.debt -= repaid;
            self.semaphore.add_permits((more - repaid) as usize);
        } else if max < state.max {
            let fewer = state.max - max;
            let taken = u32::try_from(self.semaphore.forget_permits(fewer as usize)).unwrap_or(0);
            state.debt += fewer.saturating_sub(taken);
        }
        state.max = max;
    }

    fn in_flight(&self, state: &BackendState) -> u32 {
        let available = u32::try_from(self.semaphore.available_permits()).unwrap_or(u32::MAX);
        state
            .max
            .saturating_add(state.debt)
            .saturating_sub(available)
    }
}

/// A slot in a backend's concurrency limit, released on drop (waking the next waiter).
#[must_use = "the slot is released when the permit is dropped"]
pub struct ConcurrencyPermit {
    held: Option<(Arc<Backend>, OwnedSemaphorePermit)>,
}

impl fmt::Debug for ConcurrencyPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyPermit")
            .field("limited", &self.held.is_some())
            .finish()
    }
}

impl ConcurrencyPermit {
    /// A permit for a backend without a limit.
    pub fn unlimited() -> Self {
        Self { held: None }
    }
}

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        if let Some((backend, permit)) = self.held.take() {
            let mut state = backend.state();
            if state.debt > 0 {
                state.debt -= 1;
                permit.forget();
            } else {
                drop(permit);
            }
        }
    }
}

/// Decrements the queue count when a waiter finishes or is dropped.
struct Waiting(Arc<Backend>);

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.waiting = state.waiting.saturating_sub(1);
    }
}

impl ConcurrencyLimiter {
    /// A limiter with default settings (queue as long as `max`, 5 s wait).
    pub fn new() -> Self {
        Self::default()
    }

    /// A limiter with these settings.
    pub fn with_config(config: ConcurrencyConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                backends: Mutex::default(),
            }),
        }
    }

    fn backends(&self) -> MutexGuard<'_, HashMap<String, Arc<Backend>>> {
        self.inner
            .backends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot of `backend` (its key) under `max` (its current `maxConcurrency`; `None`
    /// admits at once), waiting in FIFO order until `now + queue_timeout` if all are busy.
    /// Dropping the returned future (caller gone) leaves the queue cleanly.
    ///
    /// When a backend's limit is removed, its waiters are admitted at once; when one is set
    /// again, counting restarts from zero (requests admitted meanwhile are not counted).
    pub async fn acquire(
        &self,
        backend: &str,
        max: Option<u32>,
        now: Instant,
    ) -> Result<ConcurrencyPermit, Saturated> {
        let Some(max) = max else {
            if let Some(entry) = self.backends().remove(backend) {
                entry.semaphore.close();
            }
            return Ok(ConcurrencyPermit::unlimited());
        };
        let queue_len = self.inner.config.queue_len.unwrap_or(max);
        let (entry, waiting) = {
            let mut backends = self.backends();
            let entry = match backends.get(backend) {
                Some(entry) => entry.clone(),
                None => {
                    let entry = Arc::new(Backend::new(max));
                    backends.insert(backend.to_owned(), entry.clone());
                    entry
                }
            };
            let mut state = entry.state();
            entry.resize(&mut state, max);
            match entry.semaphore.clone().try_acquire_owned() {
                Ok(permit) => {
                    drop(state);
                    return Ok(ConcurrencyPermit {
                        held: Some((entry, permit)),
                    });
                }
                Err(TryAcquireError::Closed) => return Ok(ConcurrencyPermit::unlimited()),
                Err(TryAcquireError::NoPermits) => {}
            }
            if state.waiting >= queue_len {
                return Err(Saturated::QueueFull { max, queue_len });
            }
            state.waiting += 1;
            drop(state);
            (entry.clone(), Waiting(entry))
        };
        let timeout = self.inner.config.queue_timeout;
        let acquired =
            tokio::time::timeout_at(now + timeout, entry.semaphore.clone().acquire_owned()).await;
        drop(waiting);
        match acquired {
            Ok(Ok(permit)) => Ok(ConcurrencyPermit {
                held: Some((entry, permit)),
            }),
            // The limit was removed while waiting.
            Ok(Err(_closed)) => Ok(ConcurrencyPermit::unlimited()),
            Err(_elapsed) => Err(Saturated::TimedOut {
                max,
                waited: Instant::now().saturating_duration_since(now),
            }),
        }
    }

    /// Requests in flight on `backend` under its limit (0 when it has none).
    pub fn in_flight(&self, backend: &str) -> u32 {
        self.backends().get(backend).map_or(0, |b| {
            let state = b.state();
            b.in_flight(&state)
        })
    }

    /// Requests waiting for `backend`.
    pub fn waiting(&self, backend: &str) -> u32 {
        self.backends()
            .get(backend)
            .map_or(0, |b| b.state().waiting)
    }

    /// Drops the entries of backends with nothing in flight or waiting (e.g. after a snapshot
    /// removed them); returns how many were dropped.
    pub fn prune_idle(&self) -> usize {
        let mut backends = self.backends();
        let before = backends.len();
        backends.retain(|_, b| {
            let state = b.state();
            state.waiting > 0 || b.in_flight(&state) > 0
        });
        before - backends.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const B: &str = "gpu/vllm-0";

    /// Lets spawned tasks run until they block (paused clock: no time passes).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn limiter(queue_len: Option<u32>) -> ConcurrencyLimiter {
        ConcurrencyLimiter::with_config(ConcurrencyConfig {
            queue_len,
            queue_timeout: Duration::from_secs(5),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_always_admits() {
        let l = ConcurrencyLimiter::new();
        let permits: Vec<_> =
            futures_util::future::join_all((0..1_000).map(|_| l.acquire(B, None, Instant::now())))
                .await;
        assert!(permits.iter().all(Result::is_ok));
        assert_eq!(l.in_flight(B), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn max_is_respected_under_many_tasks() {
        let l = limiter(Some(1_000));
        let current = Arc::new(AtomicU32::new(0));
        let peak = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (l, current, peak) = (l.clone(), current.clone(), peak.clone());
                tokio::spawn(async move {
                    let permit = l.acquire(B, Some(4), Instant::now()).await?;
                    let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1 + i % 7)).await;
                    current.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                    Ok::<_, Saturated>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 4);
        assert_eq!(l.in_flight(B), 0);
        assert_eq!(l.waiting(B), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_fifo_order() {
        let l = limiter(Some(10));
        let held = l.acquire(B, Some(1), Instant::now()).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (l2, order) = (l.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = l2.acquire(B, Some(1), Instant::now()).await.unwrap();
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            settle().await;
            assert_eq!(l.waiting(B), i + 1);
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn queue_full_is_refused_immediately() {
        // Default queue length: as long as `max`.
        let l = ConcurrencyLimiter::new();
        let _a = l.acquire(B, Some(2), Instant::now()).await.unwrap();
        let _b = l.acquire(B, Some(2), Instant::now()).await.unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.acquire(B, Some(2), Instant::now()).await })
            })
            .collect();
        settle().await;
        assert_eq!(l.waiting(B), 2);
        let start = Instant::now();
        let e = l.acquire(B, Some(2), start).await.unwrap_err();
        assert_eq!(
            e,
            Saturated::QueueFull {
                max: 2,
                queue_len: 2
            }
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(e.metric_label(), "queue_full");
        for w in waiters {
            assert!(matches!(w.await.unwrap(), Err(Saturated::TimedOut { .. })));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_too_long_is_refused() {
        let l = ConcurrencyLimiter::new();
        let _held = l.acquire(B, Some(1), Instant::now()).await.unwrap();
        let start = Instant::now();
        let e = l.acquire(B, Some(1), start).await.unwrap_err();
        assert_eq!(
            e,
            Saturated::TimedOut {
                max: 1,
                waited: Duration::from_secs(5)
            }
        );
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(l.waiting(B), 0);
        assert_eq!(l.in_flight(B), 1);
        let api = ApiError::from(&e);
        assert_eq!(api.kind, ErrorKind::Unavailable);
        assert_eq!(api.code, Some("backend_saturated"));
        assert_eq!(api.retry_after, Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_counts_from_now() {
        let l = ConcurrencyLimiter::new();
        let _held = l.acquire(B, Some(1), Instant::now()).await.unwrap();
        // The request already spent 4 s elsewhere: 1 s of queueing is left.
        let arrived = Instant::now();
        tokio::time::advance(Duration::from_secs(4)).await;
        let e = l.acquire(B, Some(1), arrived).await.unwrap_err();
        assert!(
            matches!(e, Saturated::TimedOut { waited, .. } if waited == Duration::from_secs(5))
        );
        assert_eq!(arrived.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn permit_drop_wakes_the_next_waiter() {
        let l = ConcurrencyLimiter::new();
        let held = l.acquire(B, Some(1), Instant::now()).await.unwrap();
        let start = Instant::now();
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move { l.acquire(B, Some(1), Instant::now()).await })
        };
        settle().await;
        assert!(!waiter.is_finished());
        tokio::time::advance(Duration::from_secs(2)).await;
        drop(held);
        let permit = waiter.await.unwrap().unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(l.in_flight(B), 1);
        drop(permit);
        assert_eq!(l.in_flight(B), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_waiter_does_not_leak() {
        let l = limiter(Some(10));
        let held = l.acquire(B, Some(1), Instant::now()).await.unwrap();
        let spawn_waiter = || {
            let l = l.clone();
            tokio::spawn(async move { l.acquire(B, Some(1), Instant::now()).await })
        };
        // Cancelled while queued.
        let first = spawn_waiter();
        let second = spawn_waiter();
        settle().await;
        assert_eq!(l.waiting(B), 2);
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        assert_eq!(l.waiting(B), 1);
        // The next in line still gets the slot.
        drop(held);
        let permit = second.await.unwrap().unwrap();
        // Cancelled just after being handed the slot, before running.
        let third = spawn_waiter();
        settle().await;
        assert_eq!(l.waiting(B), 1);
        drop(permit);
        third.abort();
        assert!(third.await.unwrap_err().is_cancelled());
        assert_eq!(l.in_flight(B), 0);
        assert_eq!(l.waiting(B), 0);
        let start = Instant::now();
        let _permit = l.acquire(B, Some(1), start).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn changed_max_applies_to_new_acquisitions() {
        let l = limiter(Some(10));
        let now = Instant::now;
        let a = l.acquire(B, Some(2), now()).await.unwrap();
        let b = l.acquire(B, Some(2), now()).await.unwrap();
        // Raised: admitted at once.
        let c = l.acquire(B, Some(3), now()).await.unwrap();
        assert_eq!(l.in_flight(B), 3);
        // Lowered to 1: nothing is cut off, but no one gets in until fewer than 1 are in flight.
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move { l.acquire(B, Some(1), Instant::now()).await })
        };
        settle().await;
        assert_eq!(l.in_flight(B), 3);
        drop(a);
        drop(b);
        settle().await;
        assert!(!waiter.is_finished());
        assert_eq!(l.in_flight(B), 1);
        drop(c);
        let d = waiter.await.unwrap().unwrap();
        assert_eq!(l.in_flight(B), 1);
        // Raised again while one is in flight: one more fits.
        let e = l.acquire(B, Some(2), now()).await.unwrap();
        assert!(matches!(
            l.acquire(B, Some(2), now()).await,
            Err(Saturated::TimedOut { max: 2, .. })
        ));
        drop((d, e));
        assert_eq!(l.in_flight(B), 0);
        // Lowered while idle: takes effect at once.
        let _f = l.acquire(B, Some(1), now()).await.unwrap();
        assert!(l.acquire(B, Some(1), now()).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn removed_limit_releases_waiters() {
        let l = ConcurrencyLimiter::new();
        let _held = l.acquire(B, Some(1), Instant::now()).await.unwrap();
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move { l.acquire(B, Some(1), Instant::now()).await })
        };
        settle().await;
        let start = Instant::now();
        let _free = l.acquire(B, None, start).await.unwrap();
        assert!(waiter.await.unwrap().is_ok());
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(l.in_flight(B), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn backends_are_independent_and_idle_ones_pruned() {
        let l = ConcurrencyLimiter::new();
        let a = l.acquire("ns/a", Some(1), Instant::now()).await.unwrap();
        let _b = l.acquire("ns/b", Some(1), Instant::now()).await.unwrap();
        assert_eq!(l.prune_idle(), 0);
        drop(a);
        assert_eq!(l.prune_idle(), 1);
        assert_eq!(l.in_flight("ns/b"), 1);
        assert!(l.acquire("ns/b", Some(1), Instant::now()).await.is_err());
    }
}
