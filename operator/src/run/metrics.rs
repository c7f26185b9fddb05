//! The operator's own metrics (the channel and the circuit board register theirs).

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use switchyard_crds::compile::Compiled;

/// Operator metrics (the channel registers its own).
#[derive(Debug)]
pub struct Metrics {
    /// Compiles.
    pub compiles: Counter,
    /// Compile duration, seconds.
    pub compile_seconds: Histogram,
    /// Objects not ready in the last compile.
    pub not_ready: Gauge,
    /// Status patches sent, by kind of result.
    pub status_writes: Family<Vec<(String, String)>, Counter>,
    /// Seconds since the last successful usage aggregation.
    pub aggregation_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// 1 while this replica holds the lease.
    pub leader: Gauge,
    /// The snapshot version published (value 1).
    pub snapshot: Family<Vec<(String, String)>, Gauge>,
}

impl Metrics {
    /// The metrics, registered in `r` under `switchyard_operator_`.
    pub(super) fn new(r: &mut Registry) -> Self {
        let m = Self {
            compiles: Counter::default(),
            compile_seconds: Histogram::new(exponential_buckets(0.0001, 3.0, 12)),
            not_ready: Gauge::default(),
            status_writes: Family::default(),
            aggregation_lag: Gauge::default(),
            leader: Gauge::default(),
            snapshot: Family::default(),
        };
        let r = r.sub_registry_with_prefix("switchyard_operator");
        r.register(
            "compiles",
            "Compiles of the routing snapshot",
            m.compiles.clone(),
        );
        r.register(
            "compile_seconds",
            "Compile duration",
            m.compile_seconds.clone(),
        );
        r.register(
            "objects_not_ready",
            "Objects not Ready in the last compile",
            m.not_ready.clone(),
        );
        r.register(
            "status_writes",
            "Status writes by result",
            m.status_writes.clone(),
        );
        r.register(
            "ingestion_lag_seconds",
            "Seconds since usage was last aggregated into status",
            m.aggregation_lag.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the lease",
            m.leader.clone(),
        );
        r.register(
            "snapshot",
            "The snapshot version published (value 1)",
            m.snapshot.clone(),
        );
        m
    }

    pub(super) fn published(&self, version: &str) {
        self.snapshot.clear();
        self.snapshot
            .get_or_create(&vec![("version".to_owned(), version.to_owned())])
            .set(1);
    }

    pub(super) fn compiled(&self, c: &Compiled, took: Duration) {
        self.compiles.inc();
        self.compile_seconds.observe(took.as_secs_f64());
        self.not_ready
            .set(c.diagnostics.iter().filter(|d| !d.ready()).count() as i64);
    }

    pub(super) fn status_report(&self, report: crate::controller::StatusReport) {
        for (what, n) in [
            ("patched", report.patched),
            ("unchanged", report.unchanged),
            ("failed", report.failed),
        ] {
            self.status_writes
                .get_or_create(&vec![("result".to_owned(), what.to_owned())])
                .inc_by(n as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_version_is_the_one_exported() {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        m.published("v1");
        m.published("v2");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"switchyard_operator_snapshot{version="v2"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"version="v1""#), "{text}");
    }
}
