//! Upstream endpoints: a route target resolved to a URL, a dialect, credentials, extra
//! headers, timeouts and prices.

use std::time::Duration;

use switchyard_crds::common::ModelPricing;
use switchyard_crds::provider::{AuthType, ProviderType};
use switchyard_crds::snapshot::{
    HeaderSnapshot, ModelSnapshot, SecretValue, Snapshot, TargetKind, TargetSnapshot, TimeoutsMs,
};
use switchyard_routing::{Dialect, Endpoint};

use crate::errors::{ApiError, ErrorKind};

/// Anthropic API version sent when the caller named none.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Timeout defaults (LLM calls are long): first byte 5 min, idle gap 2 min, total 15 min.
pub const DEFAULT_FIRST_BYTE: Duration = Duration::from_secs(300);
/// Default idle gap inside a stream.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(120);
/// Default total.
pub const DEFAULT_TOTAL: Duration = Duration::from_secs(900);

/// Effective timeouts of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect; `None`: the client's default (`--connect-timeout-ms`).
    pub connect: Option<Duration>,
    /// Until response headers.
    pub first_byte: Duration,
    /// Between two body chunks.
    pub idle: Duration,
    /// Whole request.
    pub total: Duration,
}

impl Timeouts {
    /// Target timeouts overridden by a policy's.
    pub fn resolve(target: &TimeoutsMs, policy: Option<&TimeoutsMs>) -> Self {
        let pick =
            |p: Option<u64>, t: Option<u64>, d: Duration| p.or(t).map_or(d, Duration::from_millis);
        let p = policy.cloned().unwrap_or_default();
        Self {
            connect: p.connect.or(target.connect).map(Duration::from_millis),
            first_byte: pick(p.first_byte, target.first_byte, DEFAULT_FIRST_BYTE),
            idle: pick(p.idle, target.idle, DEFAULT_IDLE),
            total: pick(p.total, target.total, DEFAULT_TOTAL),
        }
    }
}

/// How to authenticate to the upstream.
#[derive(Clone, Debug)]
pub enum Credential {
    /// Nothing.
    None,
    /// A key from a Secret.
    Key(SecretValue),
    /// The caller's own credential must be forwarded.
    Passthrough,
}

/// A resolved upstream.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Dialect it speaks.
    pub dialect: Dialect,
    /// Base URL (OpenAI dialect: includes the `/v1` part; Anthropic: the host root).
    pub base: String,
    /// `provider/NAME:model` etc. for records (the model as asked, whatever it is).
    pub target_label: String,
    /// The same target with [`Upstream::label_model`] as its model: the label of its circuit
    /// breaker and circuit metrics, never a caller's invented model name.
    pub label: String,
    /// Provider or backend type (`openai`, `vllm`, …).
    pub kind: &'static str,
    /// Provider or backend key.
    pub name: String,
    /// Backend picked in a group.
    pub backend: Option<String>,
    /// Model to ask for.
    pub model: String,
    /// Credential.
    pub credential: Credential,
    /// Extra headers.
    pub headers: Vec<HeaderSnapshot>,
    /// Timeouts (before policy overrides).
    pub timeouts: TimeoutsMs,
    /// Prices of the model, when declared.
    pub pricing: Option<ModelPricing>,
    /// Whether the model is declared (or discovered, observed) by the Provider/Backend. Only
    /// such models become metric label values and breaker keys (others are [`OTHER_MODEL`]),
    /// so callers cannot inflate metric cardinality or the breaker registry.
    pub declared: bool,
    /// Whether this is an OpenAI provider (which accepts `metadata` with `store`).
    pub is_openai: bool,
}

impl Upstream {
    /// Resolves a provider or backend target. Group targets are resolved by the caller after
    /// picking a member (see [`Upstream::backend`]).
    pub fn provider(snapshot: &Snapshot, target: &TargetSnapshot, model: &str) -> Option<Self> {
        let p = snapshot.provider(&target.key)?;
        let declared = names_model(&p.models, model);
        let credential = match p.auth {
            AuthType::None => Credential::None,
            AuthType::Passthrough => Credential::Passthrough,
            AuthType::ApiKey => Credential::Key(p.api_key.clone()?),
        };
        Some(Self {
            dialect: if p.type_ == ProviderType::Anthropic {
                Dialect::Anthropic
            } else {
                Dialect::OpenAi
            },
            base: p.endpoint.clone(),
            target_label: target_label(target, model),
            label: target_label(target, label_model(declared, model)),
            kind: p.type_.as_str(),
            name: p.key.clone(),
            backend: None,
            model: model.to_owned(),
            credential,
            headers: p.headers.clone(),
            timeouts: p.timeouts.clone(),
            pricing: switchyard_crds::pricing::price_for(&p.prices, model).cloned(),
            declared,
            is_openai: p.type_ == ProviderType::Openai,
        })
    }

    /// Resolves a backend (directly targeted, or picked from `group_target`).
    pub fn backend(
        snapshot: &Snapshot,
        backend_key: &str,
        via: &TargetSnapshot,
        model: &str,
    ) -> Option<Self> {
        let b = snapshot.backend(backend_key)?;
        let declared = names_model(&b.models, model);
        Some(Self {
            dialect: Dialect::OpenAi,
            base: b.url.clone(),
            target_label: target_label(via, model),
            label: target_label(via, label_model(declared, model)),
            kind: b.type_.as_str(),
            name: b.key.clone(),
            backend: (via.kind == TargetKind::AffinityGroup).then(|| b.key.clone()),
            model: model.to_owned(),
            credential: b.api_key.clone().map_or(Credential::None, Credential::Key),
            headers: Vec::new(),
            timeouts: b.timeouts.clone(),
            pricing: pricing(&b.models, model),
            declared,
            is_openai: false,
        })
    }

    /// The model as metric labels and breaker keys name it: the model when the Provider/Backend
    /// declares it ([`Upstream::declared`]), else [`OTHER_MODEL`].
    pub fn label_model(&self) -> &str {
        label_model(self.declared, &self.model)
    }

    /// URL for an endpoint in this upstream's dialect.
    pub fn url(&self, endpoint: Endpoint) -> Result<String, ApiError> {
        let path = match (self.dialect, endpoint) {
            (
                Dialect::Anthropic,
                Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses,
            ) => "/v1/messages",
            (Dialect::Anthropic, Endpoint::Completions | Endpoint::Embeddings) => {
                return Err(ApiError::invalid(format!(
                    "{} ({}) does not support {}",
                    self.name,
                    self.kind,
                    endpoint.path()
                )));
            }
            (Dialect::OpenAi, Endpoint::ChatCompletions | Endpoint::Messages) => {
                "/chat/completions"
            }
            (Dialect::OpenAi, Endpoint::Completions) => "/completions",
            (Dialect::OpenAi, Endpoint::Embeddings) => "/embeddings",
            // OpenAI proper serves the Responses API natively; other OpenAI-dialect servers get
            // it translated to chat completions (see `proxy::responses`).
            (Dialect::OpenAi, Endpoint::Responses) if self.is_openai => "/responses",
            (Dialect::OpenAi, Endpoint::Responses) => "/chat/completions",
        };
        Ok(format!("{}{}", self.base.trim_end_matches('/'), path))
    }

    /// Authentication headers, given what the caller presented (`None` when the caller sent no
    /// credential or authenticated with a gateway key, which is never forwarded).
    pub fn auth_headers(
        &self,
        caller_credential: Option<&str>,
    ) -> Result<Vec<(&'static str, String)>, ApiError> {
        let key = match &self.credential {
            Credential::None => return Ok(Vec::new()),
            Credential::Key(k) => k.expose().to_owned(),
            Credential::Passthrough => caller_credential.map(str::to_owned).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Authentication,
                    format!(
                        "{} uses passthrough auth: send your own provider API key",
                        self.name
                    ),
                )
            })?,
        };
        Ok(match self.dialect {
            Dialect::OpenAi => vec![("authorization", format!("Bearer {key}"))],
            Dialect::Anthropic => vec![("x-api-key", key)],
        })
    }
}

pub use switchyard_crds::circuits::OTHER_MODEL;

/// Whether `models` (declared or discovered by the Provider/Backend) has `model`; the same test
/// as [`Snapshot::declares_model`].
fn names_model(models: &[ModelSnapshot], model: &str) -> bool {
    models.iter().any(|m| m.name == model)
}

fn label_model(declared: bool, model: &str) -> &str {
    if declared { model } else { OTHER_MODEL }
}

fn target_label(target: &TargetSnapshot, model: &str) -> String {
    TargetSnapshot {
        kind: target.kind,
        key: target.key.clone(),
        model: Some(model.to_owned()),
    }
    .to_string()
}

/// A Backend's price for `model`: its exact `models[].pricing`, or a dated alias of one
/// ([`switchyard_crds::pricing`]; Backends have no pattern prices).
fn pricing(models: &[ModelSnapshot], model: &str) -> Option<ModelPricing> {
    let rules = models
        .iter()
        .filter_map(|m| m.pricing.as_ref().map(|p| (m.name.as_str(), p)));
    switchyard_crds::pricing::best_price(rules, model).cloned()
}

#[cfg(test)]
mod tests {
    use switchyard_crds::snapshot::ProviderSnapshot;

    use super::*;

    fn snap(type_: ProviderType, auth: AuthType, key: Option<&str>) -> Snapshot {
        Snapshot {
            providers: vec![ProviderSnapshot {
                key: "ns/p".into(),
                type_,
                endpoint: "https://api.example.com/v1".into(),
                auth,
                api_key: key.map(SecretValue::new),
                headers: vec![],
                models: vec![],
                prices: vec![],
                timeouts: TimeoutsMs::default(),
            }],
            ..Default::default()
        }
    }

    fn target() -> TargetSnapshot {
        TargetSnapshot {
            kind: TargetKind::Provider,
            key: "ns/p".into(),
            model: None,
        }
    }

    #[test]
    fn api_key_sent_the_way_each_dialect_expects() {
        let o = Upstream::provider(
            &snap(ProviderType::Openai, AuthType::ApiKey, Some("sk-o")),
            &target(),
            "m",
        )
        .unwrap();
        assert_eq!(
            o.auth_headers(Some("caller")).unwrap(),
            [("authorization", "Bearer sk-o".to_owned())]
        );
        assert_eq!(
            o.url(Endpoint::ChatCompletions).unwrap(),
            "https://api.example.com/v1/chat/completions"
        );
        let a = Upstream::provider(
            &snap(ProviderType::Anthropic, AuthType::ApiKey, Some("sk-a")),
            &target(),
            "m",
        )
        .unwrap();
        assert_eq!(
            a.auth_headers(None).unwrap(),
            [("x-api-key", "sk-a".to_owned())]
        );
        assert!(a.url(Endpoint::Embeddings).is_err());
    }

    #[test]
    fn passthrough_needs_a_caller_credential() {
        let p = Upstream::provider(
            &snap(ProviderType::Openai, AuthType::Passthrough, None),
            &target(),
            "m",
        )
        .unwrap();
        assert_eq!(
            p.auth_headers(Some("sk-caller")).unwrap(),
            [("authorization", "Bearer sk-caller".to_owned())]
        );
        assert_eq!(
            p.auth_headers(None).unwrap_err().kind,
            ErrorKind::Authentication
        );
        let n = Upstream::provider(
            &snap(ProviderType::Vllm, AuthType::None, None),
            &target(),
            "m",
        )
        .unwrap();
        assert!(
            n.auth_headers(Some("sk-caller")).unwrap().is_empty(),
            "never forwarded to auth none"
        );
    }

    #[test]
    fn policy_timeouts_override_target_timeouts() {
        let t = TimeoutsMs {
            first_byte: Some(1000),
            idle: None,
            total: Some(5000),
            connect: None,
        };
        let p = TimeoutsMs {
            first_byte: Some(200),
            ..Default::default()
        };
        let r = Timeouts::resolve(&t, Some(&p));
        assert_eq!(r.first_byte, Duration::from_millis(200));
        assert_eq!(r.idle, DEFAULT_IDLE);
        assert_eq!(r.total, Duration::from_millis(5000));
    }
}
