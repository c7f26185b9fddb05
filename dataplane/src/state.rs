//! Shared state of the data plane: the routing table (swapped atomically), the upstream
//! client, balancer, guardrail scanner, spool and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use switchyard_crds::snapshot::Snapshot;
use switchyard_routing::balance::Balancer;
use switchyard_routing::table::{RoutingTable, TableError};

use crate::breaker::{BreakerRegistry, CircuitState, Transition, TransitionHook};
use crate::clients::Clients;
use crate::guardrails::Scanner;
use crate::limits::{AnswerBuffer, ConcurrencyConfig, ConcurrencyLimiter, Limiter};
use crate::metrics::Metrics;
use crate::retry::RetryBudgets;
use crate::spool::Spool;

/// Request-handling settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Time to receive a whole request body (then 408).
    pub body_timeout: Duration,
    /// Largest non-streamed upstream response read.
    pub max_response_bytes: usize,
    /// All non-streamed upstream answers buffered at once, bytes (see [`AnswerBuffer`]).
    pub answer_buffer_bytes: usize,
    /// Refuse callers without a gateway key.
    pub require_client_key: bool,
    /// Which addresses upstream calls may reach (checked before any connection).
    pub egress: Arc<crate::egress::EgressPolicy>,
    /// Largest request body kept for retries and fallbacks; a larger body is sent once.
    pub retry_buffer_bytes: usize,
    /// Backend wait queues (`maxConcurrency`).
    pub queue: ConcurrencyConfig,
    /// Bounds of the Responses API store, per workspace.
    pub response_store: crate::response_store::StoreLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            body_timeout: Duration::from_secs(30),
            max_response_bytes: 64 << 20,
            answer_buffer_bytes: 256 << 20,
            require_client_key: false,
            egress: Arc::default(),
            retry_buffer_bytes: 4 << 20,
            queue: ConcurrencyConfig::default(),
            response_store: crate::response_store::StoreLimits::default(),
        }
    }
}

/// The data plane's state.
#[derive(Debug)]
pub struct AppState {
    table: ArcSwap<RoutingTable>,
    ready: AtomicBool,
    /// Upstream HTTP clients (one per connect timeout in use).
    pub client: Clients,
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
    /// Circuit breakers per (policy, target); they survive snapshot swaps.
    pub breakers: BreakerRegistry,
    /// Retry budgets per policy.
    pub retry_budgets: RetryBudgets,
    /// Request and token limits.
    pub limiter: Limiter,
    /// Backend `maxConcurrency` slots and queues.
    pub concurrency: ConcurrencyLimiter,
    /// The budget of buffered upstream answers.
    pub answer_buffer: AnswerBuffer,
    /// Woken on every circuit transition (the circuit reporter waits on it).
    pub circuit_changed: Arc<tokio::sync::Notify>,
    /// Responses API state, per workspace.
    pub responses: crate::response_store::ResponseStore,
}

impl AppState {
    /// New state with an empty table (not ready).
    pub fn new(
        client: Clients,
        spool: Spool,
        metrics: Arc<Metrics>,
        registry: Registry,
        settings: Settings,
    ) -> Self {
        let circuit_changed = Arc::new(tokio::sync::Notify::new());
        let hook = transition_hook(metrics.clone(), circuit_changed.clone());
        Self {
            table: ArcSwap::from_pointee(RoutingTable::empty()),
            ready: AtomicBool::new(false),
            breakers: BreakerRegistry::new(default_route_breaker()).with_hook(hook),
            retry_budgets: RetryBudgets::default(),
            limiter: Limiter::new(),
            concurrency: ConcurrencyLimiter::with_config(settings.queue.clone()),
            answer_buffer: AnswerBuffer::new(settings.answer_buffer_bytes),
            responses: crate::response_store::ResponseStore::new(settings.response_store),
            circuit_changed,
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
                let now = Instant::now();
                self.breakers.apply_snapshot(&t.snapshot, now);
                self.retry_budgets
                    .retain(t.snapshot.router_policies.iter().map(|p| p.key.as_str()));
                self.forget_pruned_circuits(now);
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

    /// Drops the circuit gauges of breakers that no longer exist.
    fn forget_pruned_circuits(&self, now: Instant) {
        let live: std::collections::HashSet<crate::metrics::CircuitLabels> = self
            .breakers
            .snapshot(now)
            .into_iter()
            .map(|b| crate::metrics::CircuitLabels {
                policy: b.policy,
                target: b.target,
            })
            .collect();
        let mut gone = Vec::new();
        // prometheus-client has no iteration over a family; the gauges we set are mirrored here.
        for labels in self.metrics.circuit_labels() {
            if !live.contains(&labels) {
                gone.push(labels);
            }
        }
        for labels in gone {
            self.metrics.forget_circuit(&labels);
        }
    }
}

/// The breaker of routes without a RouterPolicy: the seed's defaults, without the latency
/// threshold (a non-streamed LLM call is legitimately slow; a RouterPolicy sets one).
pub fn default_route_breaker() -> switchyard_crds::router_policy::CircuitBreaker {
    switchyard_crds::router_policy::CircuitBreaker {
        latency_threshold_ms: u32::MAX,
        ..Default::default()
    }
}

/// Metrics, logs and the reporter's wake-up for every circuit transition.
fn transition_hook(metrics: Arc<Metrics>, changed: Arc<tokio::sync::Notify>) -> TransitionHook {
    Arc::new(move |t: &Transition| {
        let labels = crate::metrics::CircuitLabels {
            policy: t.policy.to_string(),
            target: t.target.to_string(),
        };
        metrics.set_circuit(&labels, t.to);
        metrics
            .circuit_transitions
            .get_or_create(&crate::metrics::TransitionLabels {
                policy: labels.policy.clone(),
                target: labels.target.clone(),
                to: match t.to {
                    CircuitState::Closed => "closed",
                    CircuitState::Open => "open",
                    CircuitState::HalfOpen => "half_open",
                }
                .to_owned(),
            })
            .inc();
        match t.to {
            CircuitState::Open if t.notify_on_open => tracing::warn!(
                policy = %t.policy, target = %t.target, from = %t.from,
                "circuit opened: calls to this target are refused until the cooldown has passed"
            ),
            _ => tracing::info!(
                policy = %t.policy, target = %t.target, from = %t.from, to = %t.to,
                "circuit state changed"
            ),
        }
        changed.notify_one();
    })
}
