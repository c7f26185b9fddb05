//! Local mode: a folder of manifests instead of a cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchyard_crds::compile::{Compiled, compile};

use super::Metrics;
use crate::channel::SnapshotHub;
use crate::config::Config;
use crate::facade::source::{Objects, SharedObjects};
use crate::status::{Counters, Probes};
use crate::store::Store;

/// Watches the folder, compiles and publishes on every change, and keeps the facade's objects
/// up to date with the status the operator computes for them (refreshed with the usage
/// counters every `--aggregate-interval-ms`).
pub(super) async fn local_mode(
    config: Config,
    hub: SnapshotHub,
    store: Store,
    objects: Arc<SharedObjects>,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let Some(dir) = config.manifests.clone() else {
        anyhow::bail!("local mode without --manifests");
    };
    let interval = Duration::from_millis(config.watch_interval_ms.max(10));
    let aggregate_every = Duration::from_millis(config.aggregate_interval_ms.max(500));
    let mut last = None;
    // The objects as loaded with their last computed status, and the compile they came from.
    let mut shown: Option<(Objects, Arc<Compiled>)> = None;
    let mut next_aggregate = Instant::now();
    loop {
        let files = switchyard_crds::manifest::files(&dir).unwrap_or_default();
        let fp: Vec<_> = files
            .iter()
            .map(|f| {
                let m = std::fs::metadata(f).ok();
                (
                    f.clone(),
                    m.as_ref().map(|m| m.len()),
                    m.and_then(|m| m.modified().ok()),
                )
            })
            .collect();
        if last.as_ref() != Some(&fp) {
            last = Some(fp);
            let d = dir.clone();
            match tokio::task::spawn_blocking(move || switchyard_crds::manifest::load(&d)).await? {
                Ok((inventory, _)) => {
                    let span = crate::controller::reconcile_span("compile");
                    let _entered = span.enter();
                    let started = Instant::now();
                    let compiled = compile(&inventory);
                    metrics.compiled(&compiled, started.elapsed());
                    compiled.log_issues();
                    if hub.publish(compiled.snapshot.clone()) {
                        metrics.published(&compiled.snapshot.version);
                        tracing::info!(version = %compiled.snapshot.version, "snapshot published");
                    }
                    shown = Some((Objects::from_inventory(&inventory), Arc::new(compiled)));
                    next_aggregate = Instant::now();
                    ready.store(true, Ordering::Release);
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not load the manifests; keeping the last snapshot")
                }
            }
        }
        if let Some((current, compiled)) = &mut shown
            && Instant::now() >= next_aggregate
        {
            next_aggregate = Instant::now() + aggregate_every;
            let workspaces = super::leader_clock::workspaces(compiled);
            let counters = match crate::aggregate::counters(&store, &workspaces).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "usage aggregation failed");
                    Counters::default()
                }
            };
            *current = current.with_status(
                compiled,
                &counters,
                &Probes::default(),
                jiff::Timestamp::now(),
            );
            objects.set(current.clone());
        }
        tokio::time::sleep(interval).await;
    }
}
