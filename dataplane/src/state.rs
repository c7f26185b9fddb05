//! Shared state of the data plane: the routing table (swapped atomically), the upstream
//! client, balancer, guardrail scanner, spool and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use switchyard_crds::snapshot::Snapshot;

use crate::balance::Balancer;
use crate::guardrails::Scanner;
use crate::metrics::Metrics;
use crate::spool::Spool;
use crate::table::{RoutingTable, TableError};

/// Request-handling settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest non-streamed upstream response read.
    pub max_response_bytes: usize,
    /// Refuse callers without a gateway key.
    pub require_client_key: bool,
    /// Which addresses upstream calls may reach (checked before any connection).
    pub egress: Arc<crate::egress::EgressPolicy>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_response_bytes: 64 << 20,
            require_client_key: false,
            egress: Arc::default(),
        }
    }
}

/// The data plane's state.
#[derive(Debug)]
pub struct AppState {
    table: ArcSwap<RoutingTable>,
    ready: AtomicBool,
    /// Upstream HTTP client.
    pub client: reqwest::Client,
    /// Backend load and group cursors.
    pub balancer: Balancer,
    /// Guardrail scanner.
    pub scanner: Scanner,
    /// Interception spool.
    pub spool: Spool,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Registry behind `/metrics`.
    pub registry: Registry,
    /// Settings.
    pub settings: Settings,
}

impl AppState {
    /// New state with an empty table (not ready).
    pub fn new(
        client: reqwest::Client,
        spool: Spool,
        metrics: Arc<Metrics>,
        registry: Registry,
        settings: Settings,
    ) -> Self {
        Self {
            table: ArcSwap::from_pointee(RoutingTable::empty()),
            ready: AtomicBool::new(false),
            client,
            balancer: Balancer::default(),
            scanner: Scanner::new(),
            spool,
            metrics,
            registry,
            settings,
        }
    }

    /// The table in force. Requests hold it for their whole life, so a swap never changes the
    /// routing of a request or stream already under way.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.table.load_full()
    }

    /// Whether a snapshot has been applied.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Prepares and swaps in a snapshot; on error the current one stays.
    pub fn apply(&self, snapshot: Snapshot) -> Result<Duration, TableError> {
        let start = Instant::now();
        let version = snapshot.version.clone();
        let previous = self.table.load().version().to_owned();
        if self.is_ready() && previous == version {
            return Ok(start.elapsed());
        }
        match RoutingTable::build(snapshot) {
            Ok(t) => {
                self.table.store(Arc::new(t));
                self.ready.store(true, Ordering::Release);
                let took = start.elapsed();
                self.metrics.snapshots_applied.inc();
                self.metrics.snapshot_apply.observe(took.as_secs_f64());
                self.metrics.set_snapshot(Some(&previous), &version);
                tracing::info!(version = %version, took_us = took.as_micros() as u64, "snapshot applied");
                Ok(took)
            }
            Err(e) => {
                self.metrics.snapshots_rejected.inc();
                tracing::error!(error = %e, "snapshot rejected; keeping the previous one");
                Err(e)
            }
        }
    }
}
