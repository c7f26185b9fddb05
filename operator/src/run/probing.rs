//! Backend probes and Providers' model discovery, on the leader, on their own clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchyard_crds::compile::Compiled;
use tokio::sync::watch;

use super::leader_clock::{LeaderClock, Turn};
use crate::controller::{Latest, Stores};
use crate::probes::{Flavor, Prober, Target};
use crate::status::Probes;

/// When probes are looked at.
#[derive(Clone, Copy, Debug)]
pub(super) struct Schedule {
    /// How often due probes are looked for (each target is probed at most once per its own
    /// interval).
    pub every: Duration,
    /// `--discovery-interval-s`.
    pub discovery_s: u64,
}

/// On the leader: probes the targets that are due (one at a time, each bounded by its
/// timeout) and publishes every round's results. A slow target delays the next probes, never a
/// status write: the status writer reads the last published results.
pub(super) async fn probe_loop(
    stores: Stores,
    (latest, leader): (Latest, watch::Receiver<bool>),
    mut prober: Prober,
    schedule: Schedule,
    out: watch::Sender<Probes>,
) {
    let mut probes = Probes::default();
    let mut next_probe: HashMap<String, Instant> = HashMap::new();
    let mut clock = LeaderClock::new(latest, leader, schedule.every);
    while let Some(turn) = clock.next().await {
        let Turn::Lead(compiled) = turn else {
            continue;
        };
        let now = Instant::now();
        let mut probed = false;
        for (target, every, is_backend) in probe_targets(&compiled, &stores, schedule.discovery_s) {
            if next_probe.get(&target.key).is_some_and(|at| now < *at) {
                continue;
            }
            next_probe.insert(target.key.clone(), now + every);
            let result = prober.probe(&target).await;
            if is_backend {
                probes.backends.insert(target.key.clone(), result);
            } else {
                probes.providers.insert(target.key.clone(), result);
            }
            probed = true;
        }
        if probed {
            out.send_replace(probes.clone());
        }
    }
}

/// Backends (every `healthCheck.intervalSeconds`) and Providers with `discoverModels`.
fn probe_targets(
    compiled: &Compiled,
    stores: &Stores,
    discovery_s: u64,
) -> Vec<(Target, Duration, bool)> {
    let snap = &compiled.snapshot;
    let mut out = Vec::new();
    for b in stores.backends.state() {
        let key = format!(
            "{}/{}",
            kube::ResourceExt::namespace(&*b).unwrap_or_default(),
            kube::ResourceExt::name_any(&*b)
        );
        let hc = &b.spec.health_check;
        if !hc.enabled {
            continue;
        }
        // Only backends that compiled (URL and credential resolved).
        let Some(s) = snap.backend(&key) else {
            continue;
        };
        out.push((
            Target {
                key,
                flavor: Flavor::of_backend(b.spec.type_),
                url: s.url.clone(),
                api_key: s.api_key.as_ref().map(|k| k.expose().to_owned()),
                timeout: Duration::from_secs(u64::from(hc.timeout_seconds)),
                failure_threshold: hc.failure_threshold,
            },
            Duration::from_secs(u64::from(hc.interval_seconds)),
            true,
        ));
    }
    for p in stores.providers.state() {
        if !p.spec.discover_models {
            continue;
        }
        let key = format!(
            "{}/{}",
            kube::ResourceExt::namespace(&*p).unwrap_or_default(),
            kube::ResourceExt::name_any(&*p)
        );
        let Some(s) = snap.provider(&key) else {
            continue;
        };
        out.push((
            Target {
                key,
                flavor: Flavor::of_provider(p.spec.type_),
                url: s.endpoint.clone(),
                api_key: s.api_key.as_ref().map(|k| k.expose().to_owned()),
                timeout: Duration::from_secs(10),
                failure_threshold: 3,
            },
            Duration::from_secs(discovery_s.max(10)),
            false,
        ));
    }
    out
}
