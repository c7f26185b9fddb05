//! When a leader-only task works: after every compile, every change of leadership and every
//! tick of its own clock.

use std::sync::Arc;
use std::time::Duration;

use switchyard_crds::compile::{Compiled, Kind};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use crate::controller::Latest;

/// What to do on a turn (see [`LeaderClock::next`]).
#[derive(Debug)]
pub(super) enum Turn {
    /// This replica leads: work on this compile.
    Lead(Arc<Compiled>),
    /// This replica does not lead.
    Follow,
    /// Nothing compiled yet.
    Wait,
}

/// The clock of a leader-only task.
#[derive(Debug)]
pub(super) struct LeaderClock {
    latest: Latest,
    leader: watch::Receiver<bool>,
    tick: Interval,
}

impl LeaderClock {
    /// Turns after every compile of `latest`, every change of `leader` and every `every`
    /// (the first at once).
    pub(super) fn new(latest: Latest, leader: watch::Receiver<bool>, every: Duration) -> Self {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            latest,
            leader,
            tick,
        }
    }

    /// Waits for the next turn; `None` when the compile loop or the lease is gone.
    pub(super) async fn next(&mut self) -> Option<Turn> {
        tokio::select! {
            r = self.latest.changed() => r.ok()?,
            r = self.leader.changed() => r.ok()?,
            _ = self.tick.tick() => {}
        }
        if !*self.leader.borrow_and_update() {
            return Some(Turn::Follow);
        }
        Some(match self.latest.borrow_and_update().clone() {
            Some(c) => Turn::Lead(c),
            None => Turn::Wait,
        })
    }
}

/// The keys of the Workspaces of a compile (whose usage status shows).
pub(super) fn workspaces(compiled: &Compiled) -> Vec<String> {
    compiled
        .diagnostics
        .iter()
        .filter(|d| d.object.kind == Kind::Workspace)
        .map(|d| d.object.key())
        .collect()
}
