//! Tests of the sliding-window limiter: request and token limits, windows rolling, retry-after,
//! changed limits, idle and evicted keys.

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
