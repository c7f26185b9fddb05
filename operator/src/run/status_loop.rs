//! The status writer: the one task that writes status and Events, on the leader only.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::Recorder;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::Metrics;
use crate::circuits::Merged;
use crate::controller::{self, Latest, Stores};
use crate::events::CircuitNotifier;
use crate::status::{Counters, Probes};
use crate::status_writer::StatusWriter;

/// What status is made of, each fed by its own task (see [`super::cluster::start`]).
#[derive(Debug)]
pub(super) struct Inputs {
    /// The latest compile.
    pub latest: Latest,
    /// Whether this replica holds the lease.
    pub leader: watch::Receiver<bool>,
    /// Usage counters; `None` until the first aggregation of this term.
    pub usage: watch::Receiver<Option<Counters>>,
    /// The last probe results.
    pub probes: watch::Receiver<Probes>,
    /// The merged circuit view; `None` while the circuit board warms up.
    pub circuits: watch::Receiver<Option<Merged>>,
}

/// On the leader: writes status after every compile, every change of an input and every
/// `every` (which also retries failed writes), and publishes circuit Events. Never waits for
/// a probe or an aggregation: it writes what the inputs hold then.
pub(super) async fn status_loop(
    stores: Stores,
    mut inputs: Inputs,
    (writer, recorder): (StatusWriter, Recorder),
    every: Duration,
    metrics: Arc<Metrics>,
) {
    let mut notifier = CircuitNotifier::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = inputs.latest.changed() => if r.is_err() { return },
            r = inputs.leader.changed() => if r.is_err() { return },
            r = inputs.usage.changed() => if r.is_err() { return },
            r = inputs.probes.changed() => if r.is_err() { return },
            r = inputs.circuits.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        let is_leader = *inputs.leader.borrow_and_update();
        metrics.leader.set(i64::from(is_leader));
        let Some(compiled) = inputs.latest.borrow_and_update().clone() else {
            continue;
        };
        if !is_leader {
            // A new term starts from what the board says then.
            notifier.reset();
            continue;
        }
        let Some(mut counters) = inputs.usage.borrow_and_update().clone() else {
            continue;
        };
        let circuit_events = match &*inputs.circuits.borrow_and_update() {
            Some(merged) => {
                crate::circuits::apply(&mut counters, &compiled.snapshot, merged);
                notifier.step(
                    merged,
                    &crate::circuits::notifying_policies(&compiled.snapshot),
                )
            }
            None => Vec::new(),
        };
        let probes = inputs.probes.borrow_and_update().clone();
        let span = controller::reconcile_span("status");
        let report = async {
            controller::publish_policy_events(&recorder, &stores, circuit_events).await;
            controller::write_statuses(
                &writer,
                Some(&recorder),
                &stores,
                &compiled,
                &counters,
                &probes,
                jiff::Timestamp::now(),
            )
            .await
        };
        let report = tracing::Instrument::instrument(report, span).await;
        metrics.status_report(report);
    }
}

#[cfg(test)]
mod tests;
