//! Usage aggregation: the record store's rollups into status counters, on the leader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_crds::compile::Kind;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::Metrics;
use crate::controller::Latest;
use crate::status::Counters;
use crate::store::Store;

/// On the leader: aggregates usage after every compile (its Workspaces) and every `every`,
/// and publishes the counters when they changed. `None` until the first aggregation of a term
/// (the status writer waits for it, so a new leader never writes empty usage over real one);
/// a failed first aggregation publishes empty counters, as a status without usage is still
/// worth writing.
pub(super) async fn usage_loop(
    store: Store,
    (mut latest, mut leader): (Latest, watch::Receiver<bool>),
    every: Duration,
    metrics: Arc<Metrics>,
    out: watch::Sender<Option<Counters>>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_aggregate = Instant::now();
    loop {
        tokio::select! {
            r = latest.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        if !*leader.borrow_and_update() {
            out.send_if_modified(|c| c.take().is_some());
            continue;
        }
        let Some(compiled) = latest.borrow_and_update().clone() else {
            continue;
        };
        let workspaces: Vec<String> = compiled
            .diagnostics
            .iter()
            .filter(|d| d.object.kind == Kind::Workspace)
            .map(|d| d.object.key())
            .collect();
        match crate::aggregate::counters(&store, &workspaces).await {
            Ok(c) => {
                last_aggregate = Instant::now();
                out.send_if_modified(|old| {
                    let modified = old.as_ref() != Some(&c);
                    if modified {
                        *old = Some(c);
                    }
                    modified
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "usage aggregation failed");
                out.send_if_modified(|old| {
                    let first = old.is_none();
                    if first {
                        *old = Some(Counters::default());
                    }
                    first
                });
            }
        }
        metrics
            .aggregation_lag
            .set(last_aggregate.elapsed().as_secs_f64());
    }
}
