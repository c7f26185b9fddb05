//! The current snapshot, shared with every data-plane connection.

use std::sync::Arc;

use bytes::Bytes;
use switchyard_crds::snapshot::Snapshot;
use tokio::sync::watch;

/// A published snapshot with its JSON, serialized once for every connection.
#[derive(Clone, Debug)]
pub(crate) struct Published {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) json: Bytes,
}

/// Holds the snapshot in force and tells subscribers when it changes.
///
/// Backed by a [`watch`] channel: a subscriber that falls behind sees only the latest snapshot
/// when it looks again, never a queue of the versions in between. Before the first
/// [`SnapshotHub::publish`] there is no snapshot, and data planes receive nothing but
/// heartbeats (they stay not-ready rather than serving an empty table).
#[derive(Clone, Debug)]
pub struct SnapshotHub {
    tx: Arc<watch::Sender<Option<Published>>>,
}

impl Default for SnapshotHub {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotHub {
    /// A hub without a snapshot yet.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(None);
        Self { tx: Arc::new(tx) }
    }

    /// Publishes a snapshot, which must be sealed (data planes reject one whose `version` does
    /// not match its content). Returns false, and wakes nobody, when its version is the one
    /// already in force.
    pub fn publish(&self, snapshot: impl Into<Arc<Snapshot>>) -> bool {
        let snapshot = snapshot.into();
        if self
            .version()
            .is_some_and(|v| v == snapshot.version.as_str())
        {
            return false;
        }
        let json = match serde_json::to_vec(&*snapshot) {
            Ok(j) => Bytes::from(j),
            Err(e) => {
                tracing::error!(error = %e, "could not serialize the snapshot; not published");
                return false;
            }
        };
        let version = snapshot.version.clone();
        let changed = self.tx.send_if_modified(|current| {
            if current
                .as_ref()
                .is_some_and(|c| c.snapshot.version == version)
            {
                return false;
            }
            *current = Some(Published { snapshot, json });
            true
        });
        if changed {
            tracing::info!(%version, "snapshot published to data planes");
        }
        changed
    }

    /// The snapshot in force, if any.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.tx.borrow().as_ref().map(|p| p.snapshot.clone())
    }

    /// The version in force, if any.
    pub fn version(&self) -> Option<String> {
        self.tx
            .borrow()
            .as_ref()
            .map(|p| p.snapshot.version.clone())
    }

    /// A subscription to the snapshots published from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }

    pub(crate) fn receiver(&self) -> watch::Receiver<Option<Published>> {
        self.tx.subscribe()
    }
}

/// Sees the latest snapshot of a [`SnapshotHub`]; versions published while it was not looking
/// are skipped.
#[derive(Debug)]
pub struct Subscription {
    rx: watch::Receiver<Option<Published>>,
}

impl Subscription {
    /// The snapshot in force now (and marks it seen).
    pub fn latest(&mut self) -> Option<Arc<Snapshot>> {
        self.rx
            .borrow_and_update()
            .as_ref()
            .map(|p| p.snapshot.clone())
    }

    /// Waits until a snapshot newer than the last one seen is published and returns it; `None`
    /// when the hub is gone.
    pub async fn next(&mut self) -> Option<Arc<Snapshot>> {
        loop {
            self.rx.changed().await.ok()?;
            if let Some(s) = self.latest() {
                return Some(s);
            }
        }
    }
}
