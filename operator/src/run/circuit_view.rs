//! The circuit view: the data planes' circuit reports merged, for status.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::circuits::{CircuitBoard, Merged};

/// Publishes the board's merged view whenever it changes: `None` until every data plane has had
/// the time to report (see [`CircuitBoard::is_warm`]; until then status keeps the circuit state
/// it shows and no Event is raised). Also looks every `every`, which is how the end of the
/// warm-up is noticed.
pub(super) async fn circuit_view_loop(
    board: CircuitBoard,
    every: Duration,
    out: watch::Sender<Option<Merged>>,
) {
    let mut changed = board.subscribe();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        let now = std::time::Instant::now();
        let view = board.is_warm(now).then(|| board.merged(now));
        out.send_if_modified(|v| {
            let modified = *v != view;
            if modified {
                *v = view;
            }
            modified
        });
    }
}
