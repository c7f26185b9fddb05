//! Picking a member backend of an AffinityGroup: round_robin, least_outstanding, weighted and
//! session_affinity (rendezvous hashing on the session key, so a session keeps its backend and
//! only the sessions of a removed backend move). Per-backend in-flight counts live here, outside
//! the snapshot, so they survive snapshot swaps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use switchyard_crds::affinity_group::LoadBalancingStrategy;
use switchyard_crds::snapshot::{AffinityGroupSnapshot, Snapshot};

/// Live state of one backend.
#[derive(Debug, Default)]
pub struct BackendLoad {
    /// Requests in flight.
    pub in_flight: AtomicUsize,
}

/// Load state of every backend and round-robin cursors of every group.
#[derive(Debug, Default)]
pub struct Balancer {
    backends: RwLock<HashMap<String, Arc<BackendLoad>>>,
    cursors: RwLock<HashMap<String, Arc<AtomicUsize>>>,
    seed: AtomicU64,
}

/// Marks a request in flight on a backend until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<BackendLoad>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balancer {
    /// The load record of a backend.
    pub fn load(&self, backend: &str) -> Arc<BackendLoad> {
        if let Some(l) = self
            .backends
            .read()
            .ok()
            .and_then(|m| m.get(backend).cloned())
        {
            return l;
        }
        match self.backends.write() {
            Ok(mut m) => m.entry(backend.to_owned()).or_default().clone(),
            Err(_) => Arc::new(BackendLoad::default()),
        }
    }

    /// Counts a request in flight on a backend.
    pub fn start(&self, backend: &str) -> InFlight {
        let load = self.load(backend);
        load.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(load)
    }

    fn cursor(&self, group: &str) -> Arc<AtomicUsize> {
        if let Some(c) = self.cursors.read().ok().and_then(|m| m.get(group).cloned()) {
            return c;
        }
        match self.cursors.write() {
            Ok(mut m) => m.entry(group.to_owned()).or_default().clone(),
            Err(_) => Arc::new(AtomicUsize::new(0)),
        }
    }

    fn random(&self) -> u64 {
        // splitmix64 over a shared counter: cheap, lock-free, good enough for load spreading.
        let mut z = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Picks a member of `group` serving `model`, skipping `exclude` (backends already tried).
    /// Healthy members are preferred; when none is healthy, any serving member is tried.
    pub fn pick(
        &self,
        snapshot: &Snapshot,
        group: &AffinityGroupSnapshot,
        model: &str,
        session: Option<&str>,
        exclude: &[String],
    ) -> Option<String> {
        let serving: Vec<&str> = group
            .members
            .iter()
            .filter(|m| m.models.iter().any(|x| x == model) && !exclude.contains(&m.backend))
            .map(|m| m.backend.as_str())
            .collect();
        let healthy: Vec<&str> = serving
            .iter()
            .copied()
            .filter(|b| snapshot.backend(b).is_some_and(|s| s.healthy))
            .collect();
        let candidates = if healthy.is_empty() { serving } else { healthy };
        if candidates.is_empty() {
            return None;
        }
        let chosen = match (group.strategy, session) {
            (LoadBalancingStrategy::SessionAffinity, Some(s)) => candidates
                .iter()
                .copied()
                .max_by_key(|b| fnv1a(&[s.as_bytes(), b"\0", b.as_bytes()])),
            (LoadBalancingStrategy::RoundRobin, _) => {
                let i = self.cursor(&group.key).fetch_add(1, Ordering::Relaxed);
                candidates.get(i % candidates.len()).copied()
            }
            (LoadBalancingStrategy::Weighted, _) => {
                let weights: Vec<u64> = candidates
                    .iter()
                    .map(|b| snapshot.backend(b).map_or(0, |s| u64::from(s.weight)))
                    .collect();
                let total: u64 = weights.iter().sum();
                if total == 0 {
                    candidates.first().copied()
                } else {
                    let mut r = self.random() % total;
                    candidates.iter().zip(&weights).find_map(|(b, w)| {
                        if r < *w {
                            Some(*b)
                        } else {
                            r -= w;
                            None
                        }
                    })
                }
            }
            // least_outstanding, and session_affinity without a session key.
            _ => {
                let start = self.cursor(&group.key).fetch_add(1, Ordering::Relaxed);
                let n = candidates.len();
                (0..n)
                    .map(|i| candidates[(start + i) % n])
                    .min_by_key(|b| self.load(b).in_flight.load(Ordering::Relaxed))
            }
        };
        chosen.map(str::to_owned)
    }
}

/// FNV-1a 64-bit over several byte slices (stable across processes and versions).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use switchyard_crds::backend::BackendType;
    use switchyard_crds::snapshot::{BackendSnapshot, GroupMemberSnapshot, TimeoutsMs};

    use super::*;

    fn snapshot(weights: &[(&str, u32, bool)]) -> Snapshot {
        Snapshot {
            backends: weights
                .iter()
                .map(|(k, w, healthy)| BackendSnapshot {
                    key: (*k).into(),
                    type_: BackendType::Vllm,
                    url: "http://x/v1".into(),
                    api_key: None,
                    models: vec![],
                    weight: *w,
                    max_concurrency: None,
                    healthy: *healthy,
                    timeouts: TimeoutsMs::default(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn group(strategy: LoadBalancingStrategy, members: &[&str]) -> AffinityGroupSnapshot {
        AffinityGroupSnapshot {
            key: "ns/g".into(),
            purpose: "chat".into(),
            strategy,
            session_header: "x-session-id".into(),
            members: members
                .iter()
                .map(|b| GroupMemberSnapshot {
                    backend: (*b).into(),
                    models: vec!["m".into()],
                })
                .collect(),
        }
    }

    #[test]
    fn round_robin_cycles() {
        let s = snapshot(&[("ns/a", 1, true), ("ns/b", 1, true), ("ns/c", 1, true)]);
        let g = group(LoadBalancingStrategy::RoundRobin, &["ns/a", "ns/b", "ns/c"]);
        let b = Balancer::default();
        let picks: Vec<String> = (0..6)
            .map(|_| b.pick(&s, &g, "m", None, &[]).unwrap())
            .collect();
        assert_eq!(picks, ["ns/a", "ns/b", "ns/c", "ns/a", "ns/b", "ns/c"]);
    }

    #[test]
    fn least_outstanding_avoids_busy_backend() {
        let s = snapshot(&[("ns/a", 1, true), ("ns/b", 1, true)]);
        let g = group(LoadBalancingStrategy::LeastOutstanding, &["ns/a", "ns/b"]);
        let b = Balancer::default();
        let _busy = [b.start("ns/a"), b.start("ns/a")];
        for _ in 0..4 {
            assert_eq!(b.pick(&s, &g, "m", None, &[]).unwrap(), "ns/b");
        }
    }

    #[test]
    fn weighted_follows_weights() {
        let s = snapshot(&[("ns/a", 3, true), ("ns/b", 1, true), ("ns/c", 0, true)]);
        let g = group(LoadBalancingStrategy::Weighted, &["ns/a", "ns/b", "ns/c"]);
        let b = Balancer::default();
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..4000 {
            *counts
                .entry(b.pick(&s, &g, "m", None, &[]).unwrap())
                .or_default() += 1;
        }
        let a = f64::from(counts["ns/a"]) / 4000.0;
        assert!((0.70..0.80).contains(&a), "{counts:?}");
        assert!(
            !counts.contains_key("ns/c"),
            "weight 0 never picked: {counts:?}"
        );
    }

    #[test]
    fn session_affinity_is_sticky_and_minimal_on_removal() {
        let s = snapshot(&[("ns/a", 1, true), ("ns/b", 1, true), ("ns/c", 1, true)]);
        let g3 = group(
            LoadBalancingStrategy::SessionAffinity,
            &["ns/a", "ns/b", "ns/c"],
        );
        let b = Balancer::default();
        let sessions: Vec<String> = (0..300).map(|i| format!("session-{i}")).collect();
        let first: Vec<String> = sessions
            .iter()
            .map(|s2| b.pick(&s, &g3, "m", Some(s2), &[]).unwrap())
            .collect();
        let again: Vec<String> = sessions
            .iter()
            .map(|s2| b.pick(&s, &g3, "m", Some(s2), &[]).unwrap())
            .collect();
        assert_eq!(first, again, "sticky");
        for backend in ["ns/a", "ns/b", "ns/c"] {
            assert!(
                first.iter().filter(|x| *x == backend).count() > 50,
                "spread over all backends"
            );
        }
        // Removing c moves only c's sessions.
        let g2 = group(LoadBalancingStrategy::SessionAffinity, &["ns/a", "ns/b"]);
        for (s2, before) in sessions.iter().zip(&first) {
            let after = b.pick(&s, &g2, "m", Some(s2), &[]).unwrap();
            if before != "ns/c" {
                assert_eq!(&after, before);
            }
        }
    }

    #[test]
    fn unhealthy_and_excluded_members_are_skipped() {
        let s = snapshot(&[("ns/a", 1, false), ("ns/b", 1, true)]);
        let g = group(LoadBalancingStrategy::RoundRobin, &["ns/a", "ns/b"]);
        let b = Balancer::default();
        for _ in 0..3 {
            assert_eq!(b.pick(&s, &g, "m", None, &[]).unwrap(), "ns/b");
        }
        assert_eq!(
            b.pick(&s, &g, "m", None, &["ns/b".into()]).unwrap(),
            "ns/a",
            "unhealthy is better than nothing"
        );
        assert_eq!(b.pick(&s, &g, "other", None, &[]), None);
    }
}
