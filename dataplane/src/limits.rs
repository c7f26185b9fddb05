//! Request limits of the data plane (docs/architecture.md, "The request path"):
//!
//! - [`Limiter`]: requests per minute, tokens per minute and tokens per day, per Workspace and per
//!   caller (workspace key + [`crate::identity::Caller::limit_key`]: a gateway key's binding, or
//!   the workspace's one anonymous caller), from the workspace's [`LimitsSnapshot`]. Requests are
//!   admitted or refused before the upstream call; tokens are charged on actual usage afterwards.
//!   A refusal is a [`LimitExceeded`] (429 with `Retry-After`).
//! - [`ConcurrencyLimiter`]: a Backend's `maxConcurrency`, with a bounded FIFO wait queue and a
//!   wait timeout. A refusal is a [`Saturated`] (503).
//!
//! - [`AnswerBuffer`]: the process-wide budget for buffered non-streamed upstream answers
//!   (`--answer-buffer-bytes`). A refusal is a [`BufferFull`] (503).
//!
//! These refusals are the gateway's own decisions, never upstream failures: they must not be
//! counted by a target's circuit breaker (they carry their own error types for that reason).
//!
//! Suggested order in the proxy: [`Limiter::admit`] (cheap, never waits) once per request, then
//! [`ConcurrencyLimiter::acquire`] per attempted backend target, holding the permit until the
//! response (or stream) ends, then [`Admission::charge`] with the usage tokens.
//!
//! [`LimitsSnapshot`]: switchyard_crds::snapshot::LimitsSnapshot

mod buffer;
mod concurrency;
mod rate;

pub use buffer::{AnswerBuffer, BufferFull, BufferPermit};
pub use concurrency::{ConcurrencyConfig, ConcurrencyLimiter, ConcurrencyPermit, Saturated};
pub use rate::{Admission, Limit, LimitExceeded, Limiter, LimiterConfig, TrackedKeys};
