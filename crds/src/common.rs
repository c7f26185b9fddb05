//! Spec and status building blocks shared by several kinds: references, models and pricing,
//! timeouts, headers, durations and usage totals.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Regex for a Kubernetes object name (DNS-1123 subdomain), used on every by-name reference.
pub const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";
/// Longest Kubernetes object name.
pub const NAME_MAX: u32 = 253;

/// A key in a Secret in the same namespace. The value is never copied into spec, status,
/// events, logs or the facade: only into the snapshot served to data planes.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret (same namespace as the referring object).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// What a model can do. Used for declared models and for routing requirements
/// (streaming, tools, vision).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelCapabilities {
    /// Chat completions (`/v1/chat/completions`, `/v1/messages`).
    #[serde(default = "default_true")]
    #[schemars(default = "default_true")]
    pub chat: bool,
    /// Legacy and fill-in-the-middle completions (`/v1/completions`).
    #[serde(default)]
    pub completions: bool,
    /// Embeddings (`/v1/embeddings`).
    #[serde(default)]
    pub embeddings: bool,
    /// Server-sent-event streaming.
    #[serde(default = "default_true")]
    #[schemars(default = "default_true")]
    pub streaming: bool,
    /// Tool (function) calling.
    #[serde(default)]
    pub tools: bool,
    /// Image inputs.
    #[serde(default)]
    pub vision: bool,
}

impl Default for ModelCapabilities {
    fn default() -> Self {
        Self {
            chat: true,
            completions: false,
            embeddings: false,
            streaming: true,
            tools: false,
            vision: false,
        }
    }
}

pub(crate) fn default_true() -> bool {
    true
}

/// Prices in US dollars per one million tokens. Cache reads and writes are priced separately
/// and never counted again as plain input tokens.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPricing {
    /// Price per 1M plain (uncached) input tokens.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1000000.0))]
    pub input: f64,
    /// Price per 1M output tokens.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1000000.0))]
    pub output: f64,
    /// Price per 1M input tokens read from the provider's prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1000000.0))]
    pub cache_read: Option<f64>,
    /// Price per 1M input tokens written to the provider's prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1000000.0))]
    pub cache_write: Option<f64>,
}

/// A model served by a Provider or Backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Model name as the upstream knows it (e.g. `gpt-4o-mini`, `llama3.1:8b`).
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// What the model can do.
    #[serde(default)]
    pub capabilities: ModelCapabilities,
    /// Context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub context_length: Option<u32>,
    /// Prices used to compute the cost of each call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<ModelPricing>,
}

/// An extra HTTP header sent upstream: a literal value or a value from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderSpec {
    /// Header name.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    )]
    pub name: String,
    /// Literal value (not for credentials: use `valueFrom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub value: Option<String>,
    /// Value read from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<SecretKeyRef>,
}

/// Timeouts for calls to an upstream. Each is a Go-style duration (`500ms`, `10s`, `2m`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// TCP + TLS connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<GoDuration>,
    /// From sending the request to the first response byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte: Option<GoDuration>,
    /// Longest gap between two chunks of a streamed response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<GoDuration>,
    /// Whole request, first byte to last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<GoDuration>,
}

/// Exactly one of provider, backend or affinity group (by name, same namespace), and the model
/// to ask it for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// A Provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub provider_ref: Option<String>,
    /// A Backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub backend_ref: Option<String>,
    /// An AffinityGroup: a member backend is picked by the group's strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub affinity_group_ref: Option<String>,
    /// Model to request from the target. Empty: the model the caller asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub model: Option<String>,
}

/// Token and request totals, as reported in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    /// Calls made.
    #[serde(default)]
    pub requests: u64,
    /// Calls that failed.
    #[serde(default)]
    pub errors: u64,
    /// Plain input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write_input_tokens: u64,
    /// Cost of input tokens (plain + cache reads + cache writes), USD.
    #[serde(default)]
    pub input_cost: f64,
    /// Cost of output tokens, USD.
    #[serde(default)]
    pub output_cost: f64,
}

/// A Go-style duration string (`300ms`, `10s`, `1m30s`, `2h`), as `metav1.Duration` writes it.
/// Parsed when deserialized, so a bad value is rejected with a clear message.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub Duration);

/// Pattern the API server enforces for [`GoDuration`] fields.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

impl GoDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Debug for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let ms = d.as_millis();
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return write!(f, "{}ns", d.as_nanos());
        }
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let mut s = d.as_secs();
        let h = s / 3600;
        s %= 3600;
        let m = s / 60;
        s %= 60;
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

/// Why a duration string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. \"500ms\", \"10s\", \"1m30s\")")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: input.to_owned(),
            reason,
        };
        if input.is_empty() {
            return Err(err("empty"));
        }
        if input == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        let mut total = 0f64;
        let mut rest = input;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| err("missing unit"))?;
            if num_len == 0 {
                return Err(err("expected a number"));
            }
            let value: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let nanos_per_unit = match &rest[..unit_len] {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(err("unknown unit")),
            };
            rest = &rest[unit_len..];
            total += value * nanos_per_unit;
        }
        // A week is far beyond any sensible timeout and keeps the cast exact.
        if !total.is_finite() || total > 7.0 * 24.0 * 3600e9 {
            return Err(err("longer than 168h"));
        }
        Ok(GoDuration(Duration::from_nanos(total.round() as u64)))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GoDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as 500ms, 10s, 1m30s or 2h.",
            "pattern": DURATION_PATTERN,
            "maxLength": 32,
        })
    }
}

/// Schema helper: a status list of conditions, merged by `type` under server-side apply.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema =
        generator.subschema_for::<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>();
    let object = schema.ensure_object();
    object.insert("x-kubernetes-list-type".into(), "map".into());
    object.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    object.insert(
        "description".into(),
        "Current state: Ready plus kind-specific conditions (ResolvedRefs, SecretResolved, Reachable).".into(),
    );
    schema
}

/// Schema helper: a string → string map with bounded keys, e.g. tags.
pub fn string_map_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "type": "string", "maxLength": 1024 },
        "maxProperties": 64,
    })
}

/// Map of tags as used in matches and requests.
pub type Tags = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let cases = [
            ("10s", Duration::from_secs(10)),
            ("500ms", Duration::from_millis(500)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("1.5s", Duration::from_millis(1500)),
            ("0", Duration::ZERO),
            ("250us", Duration::from_micros(250)),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<GoDuration>().map(GoDuration::get),
                Ok(want),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_bad_durations_with_the_input_named() {
        for bad in ["", "10", "s", "10x", "1d", "-1s", "200h"] {
            let err = bad.parse::<GoDuration>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn durations_round_trip_through_display() {
        for input in ["10s", "500ms", "1m30s", "2h", "1h1m1s", "0s", "1500ms"] {
            let d: GoDuration = input.parse().unwrap();
            let again: GoDuration = d.to_string().parse().unwrap();
            assert_eq!(d, again, "{input} -> {d}");
        }
    }
}
