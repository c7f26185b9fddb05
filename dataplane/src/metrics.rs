//! Prometheus metrics (`switchyard_*`), labelled with OpenTelemetry GenAI attribute names.
//! Label values come from the snapshot (provider keys, declared models) or small fixed sets,
//! never from raw request input, so cardinality stays bounded: a model the Provider/Backend does
//! not declare (a caller's model forwarded by a catch-all route) is `other`
//! ([`crate::upstream::OTHER_MODEL`]), in `gen_ai_request_model` and in circuit targets alike.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::upstream_failure::UpstreamFailure;

/// Labels of request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Endpoint path.
    pub endpoint: String,
    /// Provider or backend key (`-` when none was reached).
    pub gen_ai_provider_name: String,
    /// Model asked of the upstream (`-` when none).
    pub gen_ai_request_model: String,
    /// Outcome (`success`, `upstream_error`, `rejected`, `gateway_error`, `cancelled`).
    pub outcome: String,
}

/// Labels of latency metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    /// Endpoint path.
    pub endpoint: String,
    /// Provider or backend key.
    pub gen_ai_provider_name: String,
}

/// Labels of token metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// Provider or backend key.
    pub gen_ai_provider_name: String,
    /// Model.
    pub gen_ai_request_model: String,
    /// `input`, `output`, `cache_read` or `cache_write`.
    pub gen_ai_token_type: String,
}

/// Labels of `unpriced_requests`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnpricedLabels {
    /// Provider or backend key that served the call.
    pub gen_ai_provider_name: String,
    /// Model asked of it (declared, else `other`).
    pub gen_ai_request_model: String,
}

/// Labels of guardrail metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// `secrets` or `pii`.
    pub category: String,
    /// `alert`, `redact` or `block`.
    pub action: String,
}

/// Labels of upstream error metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// Provider or backend key.
    pub gen_ai_provider_name: String,
    /// Why the call failed (the closed set of [`UpstreamFailure`] labels).
    pub kind: UpstreamFailure,
}

/// Labels of circuit-breaker metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CircuitLabels {
    /// RouterPolicy key, or `default` for routes without one.
    pub policy: String,
    /// Target label (`provider/NAME:model`, `backend/NAME:model`; the model declared, or
    /// `other`).
    pub target: String,
}

/// Labels of circuit transitions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// RouterPolicy key, or `default`.
    pub policy: String,
    /// Target label.
    pub target: String,
    /// State entered: `closed`, `open`, `half_open`.
    pub to: String,
}

/// Labels of the gateway's own refusals.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `requests_per_minute`, `tokens_per_minute`, `tokens_per_day` (workspace or caller
    /// scope), `circuit_open`, `queue_full`, `queue_timeout`.
    pub reason: String,
}

/// Labels of retry metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    /// Provider or backend key.
    pub gen_ai_provider_name: String,
    /// `retried`, or `budget_exhausted` (a retryable failure not retried).
    pub outcome: String,
}

/// Labels of requests for paths the API does not serve.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnsupportedLabels {
    /// One of a fixed set of API paths other gateways and clients use, normalised (ids
    /// stripped: `/v1/files`, `/v1/audio/*`, `/model/*/invoke*`, …; see
    /// `server::UNSUPPORTED_PATHS`), `other` for any other path, or `method_not_allowed` for a
    /// served path called with a method it does not take.
    pub path: String,
}

/// Labels of the snapshot info metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SnapshotLabels {
    /// Snapshot version.
    pub version: String,
}

/// Every data-plane metric.
#[derive(Debug)]
pub struct Metrics {
    /// Requests by outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Requests in flight.
    pub in_flight: Gauge,
    /// Total request duration, seconds.
    pub duration: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    /// Time to first token, seconds.
    pub ttft: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    /// Tokens by type.
    pub tokens: Family<TokenLabels, Counter>,
    /// Upstream failures.
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// Guardrail findings.
    pub alerts: Family<AlertLabels, Counter>,
    /// Snapshots applied.
    pub snapshots_applied: Counter,
    /// Snapshots refused.
    pub snapshots_rejected: Counter,
    /// Time to build and apply a snapshot, seconds.
    pub snapshot_apply: Histogram,
    /// Current snapshot version (value 1).
    pub snapshot_info: Family<SnapshotLabels, Gauge>,
    /// Records waiting in the spool.
    pub spool_records: Gauge,
    /// Records dropped by the spool bound.
    pub spool_dropped: Counter,
    /// Records shipped.
    pub records_shipped: Counter,
    /// Failed shipping attempts.
    pub ship_failures: Counter,
    /// Circuit state per (policy, target): 0 closed, 1 open, 2 half-open.
    pub circuit_state: Family<CircuitLabels, Gauge>,
    /// Circuit transitions.
    pub circuit_transitions: Family<TransitionLabels, Counter>,
    /// Requests the gateway refused itself (limits, open circuits, full queues).
    pub refusals: Family<RefusalLabels, Counter>,
    /// Retries made or refused by the budget.
    pub retries: Family<RetryLabels, Counter>,
    /// Requests for paths (or methods) the API does not serve.
    pub unsupported: Family<UnsupportedLabels, Counter>,
    /// Served calls whose model no declared price covers (recorded with
    /// `cost_source: unpriced` and a zero cost).
    pub unpriced: Family<UnpricedLabels, Counter>,
    /// Label sets of `circuit_state` in use (so pruned breakers' gauges can be removed).
    circuit_known: std::sync::Mutex<std::collections::HashSet<CircuitLabels>>,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~100 s.
    Histogram::new(exponential_buckets(0.0001, 2.5, 16))
}

impl Metrics {
    /// New metrics, registered under `switchyard_` in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            in_flight: Gauge::default(),
            duration: Family::new_with_constructor(latency_histogram),
            ttft: Family::new_with_constructor(latency_histogram),
            tokens: Family::default(),
            upstream_errors: Family::default(),
            alerts: Family::default(),
            snapshots_applied: Counter::default(),
            snapshots_rejected: Counter::default(),
            snapshot_apply: Histogram::new(exponential_buckets(0.00001, 3.0, 12)),
            snapshot_info: Family::default(),
            spool_records: Gauge::default(),
            spool_dropped: Counter::default(),
            records_shipped: Counter::default(),
            ship_failures: Counter::default(),
            circuit_state: Family::default(),
            circuit_transitions: Family::default(),
            refusals: Family::default(),
            retries: Family::default(),
            unsupported: Family::default(),
            unpriced: Family::default(),
            circuit_known: std::sync::Mutex::default(),
        };
        let r = registry.sub_registry_with_prefix("switchyard");
        r.register(
            "requests",
            "Requests by endpoint, provider, model and outcome",
            m.requests.clone(),
        );
        r.register(
            "in_flight_requests",
            "Requests being served",
            m.in_flight.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Request duration",
            m.duration.clone(),
        );
        r.register(
            "time_to_first_token_seconds",
            "Time to first token",
            m.ttft.clone(),
        );
        r.register("tokens", "Tokens by type", m.tokens.clone());
        r.register(
            "upstream_errors",
            "Upstream failures by kind",
            m.upstream_errors.clone(),
        );
        r.register("guardrail_alerts", "Guardrail findings", m.alerts.clone());
        r.register(
            "snapshots_applied",
            "Snapshots applied",
            m.snapshots_applied.clone(),
        );
        r.register(
            "snapshots_rejected",
            "Snapshots refused",
            m.snapshots_rejected.clone(),
        );
        r.register(
            "snapshot_apply_seconds",
            "Time to prepare and apply a snapshot",
            m.snapshot_apply.clone(),
        );
        r.register("snapshot", "Snapshot in force", m.snapshot_info.clone());
        r.register(
            "spool_records",
            "Interception records waiting to be shipped",
            m.spool_records.clone(),
        );
        r.register(
            "spool_dropped_records",
            "Records dropped by the spool bound",
            m.spool_dropped.clone(),
        );
        r.register(
            "records_shipped",
            "Interception records shipped",
            m.records_shipped.clone(),
        );
        r.register(
            "ship_failures",
            "Failed shipping attempts",
            m.ship_failures.clone(),
        );
        r.register(
            "circuit_state",
            "Circuit state per policy and target (0 closed, 1 open, 2 half-open)",
            m.circuit_state.clone(),
        );
        r.register(
            "circuit_transitions",
            "Circuit state changes",
            m.circuit_transitions.clone(),
        );
        r.register(
            "refusals",
            "Requests the gateway refused itself, by reason",
            m.refusals.clone(),
        );
        r.register(
            "retries",
            "Retries of failed upstream attempts (and retries the budget refused)",
            m.retries.clone(),
        );
        r.register(
            "unsupported_requests",
            "Requests for paths the API does not serve (by known API path, `other`), and served paths called with a wrong method (`method_not_allowed`)",
            m.unsupported.clone(),
        );
        r.register(
            "unpriced_requests",
            "Served calls whose model the Provider/Backend declares no price for (recorded with cost_source unpriced and a zero cost)",
            m.unpriced.clone(),
        );
        m
    }

    /// Counts a served call nothing prices (`provider` and `model` as the request metrics
    /// label them: snapshot keys and declared models or `other`).
    pub fn count_unpriced(&self, provider: &str, model: &str) {
        self.unpriced
            .get_or_create(&UnpricedLabels {
                gen_ai_provider_name: provider.to_owned(),
                gen_ai_request_model: model.to_owned(),
            })
            .inc();
    }

    /// Sets the circuit gauge of (policy, target).
    pub fn set_circuit(&self, labels: &CircuitLabels, state: crate::breaker::CircuitState) {
        use crate::breaker::CircuitState;
        let v = match state {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        };
        self.circuit_state.get_or_create(labels).set(v);
        self.circuit_known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(labels.clone());
    }

    /// Label sets of the circuit gauges in use.
    pub fn circuit_labels(&self) -> Vec<CircuitLabels> {
        self.circuit_known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Removes the circuit gauge of a breaker that no longer exists.
    pub fn forget_circuit(&self, labels: &CircuitLabels) {
        self.circuit_state.remove(labels);
        self.circuit_known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(labels);
    }

    /// Counts a failed call to the upstream `provider` (a provider or backend key).
    pub fn upstream_failed(&self, provider: &str, failure: UpstreamFailure) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                gen_ai_provider_name: provider.to_owned(),
                kind: failure,
            })
            .inc();
    }

    /// Counts a request for a path the API does not serve; `path` is a label of the fixed set
    /// (see [`UnsupportedLabels`]).
    pub fn unsupported(&self, path: &'static str) {
        self.unsupported
            .get_or_create(&UnsupportedLabels {
                path: path.to_owned(),
            })
            .inc();
    }

    /// Counts a refusal the gateway made itself.
    pub fn refused(&self, reason: &str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Marks `version` as the snapshot in force.
    pub fn set_snapshot(&self, previous: Option<&str>, version: &str) {
        if let Some(p) = previous {
            self.snapshot_info.remove(&SnapshotLabels {
                version: p.to_owned(),
            });
        }
        self.snapshot_info
            .get_or_create(&SnapshotLabels {
                version: version.to_owned(),
            })
            .set(1);
    }
}

/// Text exposition of a registry.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_its_label() {
        let mut registry = prometheus_client::registry::Registry::default();
        let family = prometheus_client::metrics::family::Family::<
            UpstreamErrorLabels,
            prometheus_client::metrics::counter::Counter,
        >::default();
        registry.register("upstream_errors", "x", family.clone());
        family
            .get_or_create(&UpstreamErrorLabels {
                gen_ai_provider_name: "p".into(),
                kind: UpstreamFailure::Status5xx,
            })
            .inc();
        let text = encode(&registry);
        assert!(
            text.contains(r#"upstream_errors_total{gen_ai_provider_name="p",kind="status_5xx"} 1"#),
            "{text}"
        );
    }
}
