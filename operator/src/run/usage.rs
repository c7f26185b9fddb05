//! Usage aggregation: the record store's rollups into status counters, on the leader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Metrics;
use super::leader_clock::{LeaderClock, Turn, workspaces};
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
    (latest, leader): (Latest, watch::Receiver<bool>),
    every: Duration,
    metrics: Arc<Metrics>,
    out: watch::Sender<Option<Counters>>,
) {
    let mut clock = LeaderClock::new(latest, leader, every);
    let mut last_aggregate = Instant::now();
    while let Some(turn) = clock.next().await {
        let compiled = match turn {
            Turn::Lead(c) => c,
            Turn::Follow => {
                out.send_if_modified(|c| c.take().is_some());
                continue;
            }
            Turn::Wait => continue,
        };
        let workspaces = workspaces(&compiled);
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
