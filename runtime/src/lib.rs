//! The process runtime the operator and the data plane share: serving a router on a listener
//! with connection limits and graceful drain ([`serve`]), the shutdown signal ([`signal`]),
//! the tracing subscriber ([`telemetry`]), the per-request id and its span ([`request_id`]) and
//! long-running tasks whose end is never silently lost ([`supervise`]).
//!
//! It knows nothing of routing, snapshots or Kubernetes: it depends on neither the operator nor
//! the data plane.

pub mod request_id;
pub mod serve;
pub mod signal;
pub mod supervise;
pub mod telemetry;
