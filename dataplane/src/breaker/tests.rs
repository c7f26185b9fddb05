use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use switchyard_crds::backend::BackendType;
use switchyard_crds::snapshot::{
    BackendSnapshot, PolicyMatchSnapshot, RetriesSnapshot, TimeoutsMs,
};

use super::*;

const FAST: Duration = Duration::from_millis(10);

fn cfg() -> CircuitBreaker {
    CircuitBreaker::default()
}

fn breaker(cfg: &CircuitBreaker, t0: Instant) -> Arc<Breaker> {
    Arc::new(Breaker::new(cfg, t0))
}

/// A breaker recording its transitions.
fn hooked(cfg: &CircuitBreaker, t0: Instant) -> (Arc<Breaker>, Arc<Mutex<Vec<Transition>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let hook: TransitionHook = Arc::new(move |t: &Transition| sink.lock().unwrap().push(t.clone()));
    (
        Arc::new(Breaker::named("ns/p", "provider/a:m", cfg, t0, Some(hook))),
        seen,
    )
}

fn call(b: &Arc<Breaker>, outcome: CallOutcome, now: Instant) {
    b.try_acquire(now).unwrap().finish(outcome, FAST, now);
}

fn state(b: &Breaker, now: Instant) -> CircuitState {
    b.state(now).state
}

/// Opens `b` with consecutive failures at `now`.
fn trip(b: &Arc<Breaker>, now: Instant) {
    for _ in 0..b.config().consecutive_failures {
        call(b, CallOutcome::Failure, now);
    }
    assert_eq!(state(b, now), CircuitState::Open);
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn consecutive_failures_open_the_circuit() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    for _ in 0..4 {
        call(&b, CallOutcome::Failure, t0);
    }
    assert_eq!(state(&b, t0), CircuitState::Closed);
    call(&b, CallOutcome::Failure, t0);
    assert_eq!(state(&b, t0), CircuitState::Open);
    let rejected = b.try_acquire(t0 + secs(1)).unwrap_err();
    assert_eq!(rejected.state, CircuitState::Open);
    assert_eq!(rejected.retry_at, t0 + secs(30));
    assert_eq!(rejected.retry_after_secs(t0 + secs(1)), 29);
}

#[test]
fn success_resets_the_consecutive_count() {
    let t0 = Instant::now();
    // Rate opening out of reach: only the consecutive count matters here.
    let b = breaker(
        &CircuitBreaker {
            min_requests_threshold: 1000,
            ..cfg()
        },
        t0,
    );
    for _ in 0..10 {
        for _ in 0..4 {
            call(&b, CallOutcome::Failure, t0);
        }
        call(&b, CallOutcome::Success, t0);
    }
    let s = b.state(t0);
    assert_eq!(s.state, CircuitState::Closed);
    assert_eq!(
        (s.failures, s.successes, s.consecutive_failures),
        (40, 10, 0)
    );
    assert!((s.error_rate_percent - 80.0).abs() < 1e-9);
}

#[test]
fn error_rate_opens_only_past_min_requests() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    // Alternate: never 5 in a row, 50 % failures.
    for i in 0..9 {
        let outcome = if i % 2 == 0 {
            CallOutcome::Success
        } else {
            CallOutcome::Failure
        };
        call(&b, outcome, t0);
    }
    // 9 calls, 4 failures: below minRequests.
    assert_eq!(state(&b, t0), CircuitState::Closed);
    call(&b, CallOutcome::Success, t0);
    // 10 calls, 4 failures: 40 % < 50 %.
    assert_eq!(state(&b, t0), CircuitState::Closed);
    call(&b, CallOutcome::Failure, t0);
    // 11 calls, 5 failures: 45 %.
    assert_eq!(state(&b, t0), CircuitState::Closed);
    call(&b, CallOutcome::Failure, t0);
    // 12 calls, 6 failures: 50 % >= 50 %.
    assert_eq!(state(&b, t0), CircuitState::Open);
}

#[test]
fn successes_alone_never_open_even_at_zero_threshold() {
    let t0 = Instant::now();
    let b = breaker(
        &CircuitBreaker {
            error_threshold_percent: 0,
            ..cfg()
        },
        t0,
    );
    for _ in 0..50 {
        call(&b, CallOutcome::Success, t0);
    }
    assert_eq!(state(&b, t0), CircuitState::Closed);
    call(&b, CallOutcome::Failure, t0);
    assert_eq!(state(&b, t0), CircuitState::Open);
}

#[test]
fn window_slides_and_old_failures_age_out() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    // 4 failures at t0 (no run of 5 because of the success).
    for _ in 0..4 {
        call(&b, CallOutcome::Failure, t0);
    }
    call(&b, CallOutcome::Success, t0);
    let s = b.state(t0 + secs(59));
    assert_eq!((s.failures, s.successes), (4, 1));
    // 60 s later the t0 bucket has left the window.
    let t1 = t0 + secs(60);
    let s = b.state(t1);
    assert_eq!((s.failures, s.successes), (0, 0));
    // 5 successes + 4 failures now: 9 calls, the old ones would have tripped the rate.
    for _ in 0..5 {
        call(&b, CallOutcome::Success, t1);
    }
    for _ in 0..4 {
        call(&b, CallOutcome::Failure, t1);
    }
    call(&b, CallOutcome::Success, t1);
    // 10 calls, 4 failures (40 %): closed; with the old window it would be 8/15 = 53 %.
    assert_eq!(state(&b, t1), CircuitState::Closed);
}

#[test]
fn window_buckets_are_bounded_for_long_windows() {
    let t0 = Instant::now();
    let b = breaker(
        &CircuitBreaker {
            evaluation_window_seconds: 86_400,
            ..cfg()
        },
        t0,
    );
    let inner = b.lock();
    assert_eq!(inner.buckets.len(), MAX_BUCKETS as usize);
    assert_eq!(inner.settings.bucket_secs, 1440);
}

#[test]
fn slow_success_counts_as_failure() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    let slow = Duration::from_millis(5001);
    for _ in 0..4 {
        b.try_acquire(t0)
            .unwrap()
            .finish(CallOutcome::Success, slow, t0);
    }
    // Exactly at the threshold is not slower than it.
    b.try_acquire(t0)
        .unwrap()
        .finish(CallOutcome::Success, Duration::from_millis(5000), t0);
    assert_eq!(b.state(t0).consecutive_failures, 0);
    for _ in 0..5 {
        b.try_acquire(t0)
            .unwrap()
            .finish(CallOutcome::Success, slow, t0);
    }
    assert_eq!(state(&b, t0), CircuitState::Open);
}

#[test]
fn open_rejects_until_cooldown_then_half_open() {
    let t0 = Instant::now();
    let (b, seen) = hooked(&cfg(), t0);
    trip(&b, t0);
    assert!(b.try_acquire(t0 + Duration::from_millis(29_999)).is_err());
    let probe = b.try_acquire(t0 + secs(30)).unwrap();
    assert!(probe.is_probe());
    assert_eq!(state(&b, t0 + secs(30)), CircuitState::HalfOpen);
    let seen = seen.lock().unwrap();
    let pairs: Vec<_> = seen.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        pairs,
        [
            (CircuitState::Closed, CircuitState::Open),
            (CircuitState::Open, CircuitState::HalfOpen)
        ]
    );
    assert_eq!(&*seen[0].policy, "ns/p");
    assert_eq!(&*seen[0].target, "provider/a:m");
    assert_eq!(seen[0].at, t0);
    assert!(seen[0].notify_on_open);
}

#[test]
fn half_open_admits_exactly_n_probes() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    trip(&b, t0);
    let t1 = t0 + secs(30);
    let probes: Vec<Permit> = (0..3).map(|_| b.try_acquire(t1).unwrap()).collect();
    let rejected = b.try_acquire(t1).unwrap_err();
    assert_eq!(rejected.state, CircuitState::HalfOpen);
    assert_eq!(rejected.retry_at, t1 + HALF_OPEN_RETRY_HINT);
    // One success keeps the slot: still no fourth probe.
    let mut probes = probes.into_iter();
    probes
        .next()
        .unwrap()
        .finish(CallOutcome::Success, FAST, t1);
    assert!(b.try_acquire(t1).is_err());
    assert_eq!(state(&b, t1), CircuitState::HalfOpen);
}

#[test]
fn all_probes_succeeding_closes_with_a_fresh_window() {
    let t0 = Instant::now();
    let (b, seen) = hooked(&cfg(), t0);
    trip(&b, t0);
    let t1 = t0 + secs(30);
    let probes: Vec<Permit> = (0..3).map(|_| b.try_acquire(t1).unwrap()).collect();
    for p in probes {
        p.finish(CallOutcome::Success, FAST, t1);
    }
    let s = b.state(t1);
    assert_eq!(s.state, CircuitState::Closed);
    assert_eq!((s.failures, s.successes, s.opened_at), (0, 0, None));
    // Closed again: a single failure does not re-open it.
    call(&b, CallOutcome::Failure, t1);
    assert_eq!(state(&b, t1), CircuitState::Closed);
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (last.from, last.to),
        (CircuitState::HalfOpen, CircuitState::Closed)
    );
}

#[test]
fn probe_failure_reopens_with_a_new_cooldown() {
    let t0 = Instant::now();
    let (b, seen) = hooked(&cfg(), t0);
    trip(&b, t0);
    let t1 = t0 + secs(30);
    let a = b.try_acquire(t1).unwrap();
    let c = b.try_acquire(t1).unwrap();
    a.finish(CallOutcome::Success, FAST, t1);
    let t2 = t1 + secs(2);
    c.finish(CallOutcome::Failure, FAST, t2);
    let s = b.state(t2);
    assert_eq!((s.state, s.opened_at), (CircuitState::Open, Some(t2)));
    let rejected = b.try_acquire(t2 + secs(29)).unwrap_err();
    assert_eq!(rejected.retry_at, t2 + secs(30));
    assert!(b.try_acquire(t2 + secs(30)).unwrap().is_probe());
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[test]
fn slow_probe_reopens() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    trip(&b, t0);
    let t1 = t0 + secs(30);
    b.try_acquire(t1)
        .unwrap()
        .finish(CallOutcome::Success, secs(6), t1);
    assert_eq!(state(&b, t1), CircuitState::Open);
}

#[test]
fn ignored_never_counts() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    for _ in 0..4 {
        call(&b, CallOutcome::Failure, t0);
    }
    // Ignored neither breaks nor extends the run, nor enters the window, even when slow.
    for _ in 0..100 {
        b.try_acquire(t0)
            .unwrap()
            .finish(CallOutcome::Ignored, secs(60), t0);
    }
    let s = b.state(t0);
    assert_eq!(s.state, CircuitState::Closed);
    assert_eq!((s.failures, s.successes, s.consecutive_failures), (4, 0, 4));
    // Dropped permits are ignored too.
    for _ in 0..100 {
        drop(b.try_acquire(t0).unwrap());
    }
    assert_eq!(b.state(t0).consecutive_failures, 4);
    // In half-open, ignored probes neither close nor re-open.
    call(&b, CallOutcome::Failure, t0);
    let t1 = t0 + secs(30);
    for _ in 0..10 {
        b.try_acquire(t1)
            .unwrap()
            .finish(CallOutcome::Ignored, FAST, t1);
    }
    assert_eq!(state(&b, t1), CircuitState::HalfOpen);
}

#[test]
fn dropped_permit_frees_a_probe_slot() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    trip(&b, t0);
    let t1 = t0 + secs(30);
    let mut probes: Vec<Permit> = (0..3).map(|_| b.try_acquire(t1).unwrap()).collect();
    assert!(b.try_acquire(t1).is_err());
    drop(probes.pop());
    probes.push(b.try_acquire(t1).unwrap());
    assert!(b.try_acquire(t1).is_err());
    for p in probes {
        p.finish(CallOutcome::Success, FAST, t1);
    }
    assert_eq!(state(&b, t1), CircuitState::Closed);
}

#[test]
fn calls_admitted_before_a_transition_do_not_count() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    // Admitted while closed, finishes after the circuit opened and went half-open.
    let stale_fail = b.try_acquire(t0).unwrap();
    let stale_ok: Vec<Permit> = (0..3).map(|_| b.try_acquire(t0).unwrap()).collect();
    trip(&b, t0);
    let t1 = t0 + secs(30);
    let probe = b.try_acquire(t1).unwrap();
    stale_fail.finish(CallOutcome::Failure, FAST, t1);
    assert_eq!(state(&b, t1), CircuitState::HalfOpen);
    for p in stale_ok {
        p.finish(CallOutcome::Success, FAST, t1);
    }
    assert_eq!(state(&b, t1), CircuitState::HalfOpen);
    // A stale half-open probe cannot affect the next closed period either.
    let probes: Vec<Permit> = (0..2).map(|_| b.try_acquire(t1).unwrap()).collect();
    for p in probes {
        p.finish(CallOutcome::Success, FAST, t1);
    }
    // 2 of 3 succeeded, `probe` still in flight.
    assert_eq!(state(&b, t1), CircuitState::HalfOpen);
    probe.finish(CallOutcome::Success, FAST, t1);
    assert_eq!(state(&b, t1), CircuitState::Closed);
}

#[test]
fn config_update_keeps_state() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    for _ in 0..3 {
        call(&b, CallOutcome::Failure, t0);
    }
    // Same window length: counts and the run are kept, the new threshold applies.
    b.update_config(
        &CircuitBreaker {
            consecutive_failures: 4,
            cooldown_seconds: 10,
            ..cfg()
        },
        t0,
    );
    let s = b.state(t0);
    assert_eq!(
        (s.state, s.failures, s.consecutive_failures),
        (CircuitState::Closed, 3, 3)
    );
    call(&b, CallOutcome::Failure, t0);
    assert_eq!(state(&b, t0), CircuitState::Open);
    // Open: a new cooldown applies to the running open period, state kept.
    b.update_config(
        &CircuitBreaker {
            consecutive_failures: 4,
            cooldown_seconds: 5,
            ..cfg()
        },
        t0 + secs(1),
    );
    assert_eq!(state(&b, t0 + secs(4)), CircuitState::Open);
    assert_eq!(state(&b, t0 + secs(5)), CircuitState::HalfOpen);
}

#[test]
fn shrinking_half_open_requests_closes_when_already_satisfied() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    trip(&b, t0);
    let t1 = t0 + secs(30);
    for _ in 0..2 {
        call(&b, CallOutcome::Success, t1);
    }
    assert_eq!(state(&b, t1), CircuitState::HalfOpen);
    b.update_config(
        &CircuitBreaker {
            half_open_requests: 2,
            ..cfg()
        },
        t1,
    );
    assert_eq!(state(&b, t1), CircuitState::Closed);
}

fn policy(key: &str, cb: CircuitBreaker) -> RouterPolicySnapshot {
    RouterPolicySnapshot {
        key: key.into(),
        priority: 0,
        match_: PolicyMatchSnapshot::default(),
        route: vec![],
        circuit_breaker: cb,
        retries: RetriesSnapshot::default(),
        timeouts: TimeoutsMs::default(),
    }
}

fn backend(key: &str) -> BackendSnapshot {
    BackendSnapshot {
        key: key.into(),
        type_: BackendType::Vllm,
        url: "http://x/v1".into(),
        api_key: None,
        models: vec![],
        weight: 1,
        max_concurrency: None,
        healthy: true,
        timeouts: TimeoutsMs::default(),
    }
}

#[test]
fn registry_keys_by_policy_and_target_and_uses_the_default_config() {
    let t0 = Instant::now();
    let reg = BreakerRegistry::new(CircuitBreaker {
        consecutive_failures: 2,
        ..cfg()
    });
    let p = policy("ns/p", cfg());
    let a = reg.breaker(Some(&p), "backend/a:m", t0);
    assert!(Arc::ptr_eq(&a, &reg.breaker(Some(&p), "backend/a:m", t0)));
    let d = reg.breaker(None, "backend/a:m", t0);
    assert!(!Arc::ptr_eq(&a, &d));
    assert_eq!(d.policy(), DEFAULT_POLICY);
    assert_eq!(d.config().consecutive_failures, 2);
    for _ in 0..2 {
        reg.try_acquire(None, "backend/a:m", t0)
            .unwrap()
            .finish(CallOutcome::Failure, FAST, t0);
    }
    assert!(reg.try_acquire(None, "backend/a:m", t0).is_err());
    assert!(reg.try_acquire(Some(&p), "backend/a:m", t0).is_ok());
    let all = reg.snapshot(t0);
    let summary: Vec<_> = all
        .iter()
        .map(|s| (s.policy.as_str(), s.target.as_str(), s.state))
        .collect();
    assert_eq!(
        summary,
        [
            ("default", "backend/a:m", CircuitState::Open),
            ("ns/p", "backend/a:m", CircuitState::Closed)
        ]
    );
    assert_eq!(all[0].opened_at, Some(t0));
    assert!((all[0].error_rate_percent - 100.0).abs() < 1e-9);
    // The default config change applies to existing default breakers.
    reg.set_default_config(
        CircuitBreaker {
            cooldown_seconds: 1,
            ..cfg()
        },
        t0,
    );
    assert_eq!(
        reg.state(DEFAULT_POLICY, "backend/a:m", t0 + secs(1))
            .unwrap()
            .state,
        CircuitState::HalfOpen
    );
}

#[test]
fn registry_survives_snapshot_swaps() {
    let t0 = Instant::now();
    let reg = BreakerRegistry::default();
    let p = policy("ns/p", cfg());
    let gone = policy("ns/gone", cfg());
    let b = reg.breaker(Some(&p), "backend/a:m", t0);
    trip(&b, t0);
    reg.breaker(Some(&p), "backend/removed", t0);
    reg.breaker(Some(&gone), "backend/a", t0);
    reg.breaker(None, "backend/a:other", t0);
    reg.breaker(None, "provider/a", t0);
    assert_eq!(reg.len(), 5);

    let snap = Snapshot {
        backends: vec![backend("ns/a")],
        router_policies: vec![policy(
            "ns/p",
            CircuitBreaker {
                cooldown_seconds: 5,
                ..cfg()
            },
        )],
        ..Default::default()
    };
    reg.apply_snapshot(&snap, t0);
    let keys: Vec<_> = reg
        .snapshot(t0)
        .into_iter()
        .map(|s| (s.policy, s.target, s.state))
        .collect();
    assert_eq!(
        keys,
        [
            (
                "default".into(),
                "backend/a:other".into(),
                CircuitState::Closed
            ),
            ("ns/p".into(), "backend/a:m".into(), CircuitState::Open)
        ]
    );
    // Same breaker, state kept, new thresholds applied.
    assert!(Arc::ptr_eq(&b, &reg.breaker(Some(&p), "backend/a:m", t0)));
    assert_eq!(b.config().cooldown_seconds, 5);
    assert_eq!(state(&b, t0 + secs(5)), CircuitState::HalfOpen);
}

#[test]
fn prune_idle_drops_only_quiet_closed_breakers() {
    let t0 = Instant::now();
    let reg = BreakerRegistry::default();
    let open = reg.breaker(None, "backend/open", t0);
    trip(&open, t0);
    drop(open);
    call(
        &reg.breaker(None, "backend/busy", t0),
        CallOutcome::Success,
        t0,
    );
    let held = reg.try_acquire(None, "backend/held", t0).unwrap();
    reg.breaker(None, "backend/quiet", t0);
    let t1 = t0 + secs(30);
    assert_eq!(reg.prune_idle(t1, secs(10)), 1);
    assert!(reg.state(DEFAULT_POLICY, "backend/quiet", t1).is_none());
    // Once the window has emptied, the busy one goes too; the held and open ones stay.
    let t2 = t0 + secs(61);
    assert_eq!(reg.prune_idle(t2, secs(10)), 1);
    // `open` went half-open when inspected: not closed, kept.
    assert_eq!(reg.len(), 2);
    held.finish(CallOutcome::Success, FAST, t2);
    assert_eq!(reg.prune_idle(t2 + secs(61), secs(10)), 1);
    assert_eq!(reg.len(), 1);
}

#[test]
fn concurrent_probes_are_capped_at_half_open_requests() {
    let t0 = Instant::now();
    let b = breaker(&cfg(), t0);
    trip(&b, t0);
    let t1 = t0 + secs(30);
    let threads = 16;
    let barrier = Arc::new(Barrier::new(threads));
    let admitted = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (b, barrier, admitted) = (b.clone(), barrier.clone(), admitted.clone());
            thread::spawn(move || {
                barrier.wait();
                let permit = b.try_acquire(t1);
                if permit.is_ok() {
                    admitted.fetch_add(1, Ordering::SeqCst);
                }
                // Hold the permit until every thread has tried.
                barrier.wait();
                if let Ok(p) = permit {
                    p.finish(CallOutcome::Success, FAST, t1);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(admitted.load(Ordering::SeqCst), 3);
    assert_eq!(state(&b, t1), CircuitState::Closed);
}

#[test]
fn concurrent_calls_keep_transitions_consistent() {
    let t0 = Instant::now();
    let (b, seen) = hooked(
        &CircuitBreaker {
            cooldown_seconds: 1,
            ..cfg()
        },
        t0,
    );
    let threads = 8;
    let handles: Vec<_> = (0..threads)
        .map(|id| {
            let b = b.clone();
            thread::spawn(move || {
                let mut counted = 0u64;
                for i in 0..2_000u64 {
                    let now = t0 + Duration::from_millis(i * 5);
                    if let Ok(p) = b.try_acquire(now) {
                        let outcome = match (i + id) % 7 {
                            0..=2 => CallOutcome::Failure,
                            3 => CallOutcome::Ignored,
                            _ => CallOutcome::Success,
                        };
                        if outcome != CallOutcome::Ignored {
                            counted += 1;
                        }
                        if i % 11 == 0 {
                            drop(p);
                        } else {
                            p.finish(outcome, FAST, now);
                        }
                    }
                }
                counted
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(total > 0);
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    // Every transition starts where the previous one ended, beginning from Closed.
    let mut current = CircuitState::Closed;
    for t in seen.iter() {
        assert_eq!(t.from, current);
        assert_ne!(t.from, t.to);
        assert!(matches!(
            (t.from, t.to),
            (CircuitState::Closed, CircuitState::Open)
                | (CircuitState::Open, CircuitState::HalfOpen)
                | (CircuitState::HalfOpen, CircuitState::Open)
                | (CircuitState::HalfOpen, CircuitState::Closed)
        ));
        current = t.to;
    }
    drop(seen);
    let inner = b.lock();
    assert!(inner.probes_admitted <= inner.settings.half_open_requests);
    drop(inner);
    // Every permit is finished or dropped: once half-open, all probe slots are free again.
    let end = t0 + secs(60);
    if b.state(end).state == CircuitState::HalfOpen {
        let inner = b.lock();
        assert_eq!(inner.probes_admitted, inner.probes_succeeded);
    }
}
