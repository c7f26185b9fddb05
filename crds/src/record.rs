//! The interception record: one per request, whatever happened, with every upstream attempt.
//! Written by data planes, shipped to the operator, stored and aggregated there.

use std::collections::BTreeMap;

use crate::common::ModelPricing;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::usage::Usage;
use crate::workspace::GuardrailAction;

/// What a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Cloud keys, private keys, tokens and passwords.
    Secrets,
    /// Emails, phone numbers, card numbers, IBANs.
    Pii,
}

impl Category {
    /// Wire name: `secrets` or `pii`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Secrets => "secrets",
            Category::Pii => "pii",
        }
    }
}

/// One finding in a request, safe to store and show: it never contains the matched text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// `secrets` or `pii`.
    pub category: Category,
    /// Detector name, e.g. `github_token`, `email`.
    pub kind: String,
    /// The action the policy took for this category.
    pub action: GuardrailAction,
    /// Up to 40 characters either side, with this and any neighbouring finding replaced by
    /// `[REDACTED:<kind>]`.
    pub snippet: String,
    /// JSON pointer (RFC 6901) of the string in the request body, e.g. `/messages/0/content`.
    pub location: String,
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The caller got a complete answer.
    Success,
    /// The upstream answered with an error or broke off.
    UpstreamError,
    /// The gateway refused the request (bad input, no route, guardrail, limit).
    Rejected,
    /// The gateway failed.
    GatewayError,
    /// The caller went away before the end.
    Cancelled,
}

/// One upstream attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// `provider/NAME:model` etc.
    pub target: String,
    /// Backend picked in a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Model asked for.
    pub model: String,
    /// HTTP status the upstream answered, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time until the upstream's response headers (or the failure), ms.
    pub latency_ms: u64,
}

/// The route taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteRecord {
    /// `policy`, `muxrule` or `model`.
    pub source: String,
    /// Key of the deciding policy or rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Target that answered (or the last one tried).
    pub target: String,
}

/// A tool call made by the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUsage {
    /// Call id.
    pub id: String,
    /// Tool name.
    pub name: String,
}

/// Cost in USD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Input tokens (plain + cache reads + cache writes).
    pub input: f64,
    /// Output tokens.
    pub output: f64,
}

impl Cost {
    /// The cost of `usage` under `pricing` (per 1M tokens). Cache reads and writes default to the
    /// input price when not given.
    pub fn of(usage: &Usage, pricing: &ModelPricing) -> Self {
        let per = |tokens: u64, price: f64| tokens as f64 * price / 1_000_000.0;
        let cache_read = pricing.cache_read.unwrap_or(pricing.input);
        let cache_write = pricing.cache_write.unwrap_or(pricing.input);
        Self {
            input: per(usage.input_tokens, pricing.input)
                + per(usage.cache_read_input_tokens, cache_read)
                + per(usage.cache_write_input_tokens, cache_write),
            output: per(usage.output_tokens, pricing.output),
        }
    }
}

/// Where a record's cost comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// The serving Provider/Backend declares a price for the model
    /// ([`crate::pricing::price_for`]).
    Declared,
    /// Nothing prices the model: the cost is 0 because it is unknown, not because the call was
    /// free (counted in `switchyard_unpriced_requests_total`).
    Unpriced,
}

impl CostSource {
    /// Wire name: `declared` or `unpriced`.
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Declared => "declared",
            CostSource::Unpriced => "unpriced",
        }
    }
}

/// One request through the gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interception {
    /// Unique id (UUIDv7, so ids sort by time); the idempotency key for shipping.
    pub id: uuid::Uuid,
    /// `x-request-id`.
    pub request_id: String,
    /// Start.
    pub started_at: jiff::Timestamp,
    /// End (last byte sent, error, or cancellation).
    pub ended_at: jiff::Timestamp,
    /// Endpoint path.
    pub endpoint: String,
    /// Workspace key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Who called: gateway key name, ServiceAccount, or the body's `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// How the caller authenticated: `gateway_key`, `passthrough` or `none`.
    pub credential_kind: String,
    /// Client from User-Agent.
    pub client: String,
    /// Session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Provider type (`openai`, `anthropic`, …) or backend type that served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Provider or backend key that served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// Model the caller asked for.
    pub model_requested: String,
    /// Model asked of the upstream that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_served: Option<String>,
    /// Route taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteRecord>,
    /// Every upstream attempt, in order.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// HTTP status returned to the caller.
    pub status: u16,
    /// How it ended.
    pub outcome: Outcome,
    /// Error message, if any (never contains credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Streamed.
    pub stream: bool,
    /// Total time, ms.
    pub latency_ms: u64,
    /// Time to first token (first content byte to the caller), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// Token usage.
    pub usage: Usage,
    /// True when usage was estimated (the caller left before the upstream reported it).
    pub usage_estimated: bool,
    /// Cost.
    pub cost: Cost,
    /// Where [`Interception::cost`] comes from, for a call an upstream served and that is
    /// billed; absent when no upstream served it (or it is not billed, as token counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_source: Option<CostSource>,
    /// Tool calls the model made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_usages: Vec<ToolUsage>,
    /// Finish reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Last user prompt (after redaction), truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_prompt: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Request metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Guardrail findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
    /// Snapshot version in force.
    pub snapshot_version: String,
    /// TaskChain key (`ns/name`) when this interception is a chain run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// For a model call made inside a chain run (or any follow-up call of an agent loop): the id
    /// of the interception that started the thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_root_id: Option<uuid::Uuid>,
}

impl Interception {
    /// A TaskChain run: `chain` set and no `thread_root_id` (the model calls made inside the
    /// run point at it).
    pub fn is_chain_run(&self) -> bool {
        self.chain.is_some() && self.thread_root_id.is_none()
    }

    /// The usage and cost this record accounts for itself, for sums over records. A chain
    /// run's usage is the total of its model calls, which are recorded (and counted) on their
    /// own, so it counts nothing here.
    pub fn own_usage(&self) -> (Usage, Cost) {
        if self.is_chain_run() {
            (Usage::default(), Cost::default())
        } else {
            (self.usage, self.cost)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_run_counts_no_usage_of_its_own() {
        let rec: Interception = serde_json::from_value(serde_json::json!({
            "id": "018f0000-0000-7000-8000-000000000001", "request_id": "r",
            "started_at": "2025-01-01T00:00:00Z", "ended_at": "2025-01-01T00:00:01Z",
            "endpoint": "/v1/chat/completions", "credential_kind": "none", "client": "c",
            "model_requested": "chain/triage", "status": 200, "outcome": "success",
            "stream": false, "latency_ms": 1,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0, "cache_write_input_tokens": 0},
            "usage_estimated": false, "cost": {"input": 1.0, "output": 2.0},
            "snapshot_version": "v", "chain": "default/triage"
        }))
        .unwrap();
        assert!(rec.is_chain_run());
        assert_eq!(rec.own_usage(), (Usage::default(), Cost::default()));
        let mut call = rec.clone();
        call.thread_root_id = Some(rec.id);
        assert!(!call.is_chain_run());
        assert_eq!(call.own_usage(), (rec.usage, rec.cost));
    }

    #[test]
    fn cost_prices_cache_tokens_separately() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            cache_read_input_tokens: 2_000_000,
            cache_write_input_tokens: 100_000,
        };
        let pricing = ModelPricing {
            input: 3.0,
            output: 15.0,
            cache_read: Some(0.3),
            cache_write: Some(3.75),
        };
        let c = Cost::of(&usage, &pricing);
        assert!((c.input - (3.0 + 0.6 + 0.375)).abs() < 1e-9, "{c:?}");
        assert!((c.output - 7.5).abs() < 1e-9);
        let default_cache = Cost::of(
            &usage,
            &ModelPricing {
                input: 1.0,
                output: 0.0,
                cache_read: None,
                cache_write: None,
            },
        );
        assert!((default_cache.input - 3.1).abs() < 1e-9);
    }
}
