//! Providers and Backends: endpoints, credentials, models.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ConditionType, Cx, Details, Kind, ObjectKey, Severity, headers, sorted, timeouts_ms};
use crate::backend::{BackendSpec, Scheme};
use crate::common::ModelSpec;
use crate::pricing::{PricePattern, PriceRule};
use crate::provider::{AuthType, ModelPriceSpec, ModelSource};
use crate::snapshot::{BackendSnapshot, ModelSnapshot, ProviderSnapshot};

/// Usable providers by key.
pub(crate) type Providers = BTreeMap<String, ProviderSnapshot>;
/// Usable backends by key.
pub(crate) type Backends = BTreeMap<String, BackendSnapshot>;

pub(crate) fn compile_providers(cx: &mut Cx<'_>) -> Providers {
    let inv = cx.inv;
    let mut out = Providers::new();
    for (key, p) in sorted(cx, Kind::Provider, &inv.providers, || Details::Provider {
        endpoint: None,
    }) {
        let spec = &p.spec;
        let endpoint = match (&spec.endpoint, spec.type_.default_endpoint()) {
            (Some(e), _) => Some(e.trim_end_matches('/').to_owned()),
            (None, Some(d)) => Some(d.to_owned()),
            (None, None) => {
                cx.error(
                    &key,
                    ConditionType::Ready,
                    "MissingEndpoint",
                    format!(
                        "spec.endpoint is required for provider type {}",
                        spec.type_.as_str()
                    ),
                );
                None
            }
        };
        // A rejected URL is not reported as the effective endpoint: status.endpoint is a
        // `kubectl get` column, and the URL may carry credentials.
        let endpoint = endpoint.filter(|e| check_url(cx, &key, "spec.endpoint", e));
        cx.set_details(
            &key,
            Details::Provider {
                endpoint: endpoint.clone(),
            },
        );
        let api_key = match (spec.auth.type_, &spec.auth.secret_ref) {
            (AuthType::ApiKey, None) => {
                cx.error(
                    &key,
                    ConditionType::SecretResolved,
                    "MissingSecretRef",
                    "spec.auth.secretRef is required for auth type api_key".into(),
                );
                None
            }
            (AuthType::ApiKey, Some(r)) => cx.secret(&key, Severity::Error, "API key", r),
            (_, Some(_)) => {
                cx.warn(
                    &key,
                    ConditionType::SecretResolved,
                    "SecretRefIgnored",
                    format!(
                        "spec.auth.secretRef is ignored for auth type {}",
                        spec.auth.type_.as_str()
                    ),
                );
                None
            }
            (_, None) => None,
        };
        let headers = headers(cx, &key, Severity::Error, &spec.headers);
        let mut models = declared_models(cx, &key, &spec.models);
        let prices = declared_prices(cx, &key, &models, &spec.pricing);
        if spec.discover_models {
            let discovered = p
                .status
                .iter()
                .flat_map(|s| &s.models)
                .filter(|m| m.source == ModelSource::Discovered);
            for m in discovered {
                models
                    .entry(m.name.clone())
                    .or_insert_with(|| ModelSnapshot {
                        name: m.name.clone(),
                        capabilities: m.capabilities.clone(),
                        context_length: m.context_length,
                        pricing: None,
                    });
            }
        }
        if cx.has_error(&key) {
            continue;
        }
        let Some(endpoint) = endpoint else { continue };
        out.insert(
            key.key(),
            ProviderSnapshot {
                key: key.key(),
                type_: spec.type_,
                endpoint,
                auth: spec.auth.type_,
                api_key,
                headers,
                models: models.into_values().collect(),
                prices,
                timeouts: timeouts_ms(spec.timeouts.as_ref()),
            },
        );
    }
    out
}

/// The price rules of a Provider: each exact `spec.models[].pricing` first, then `spec.pricing`
/// in order (see [`crate::pricing`] for which one prices a model). An invalid pattern is an
/// error (the CRD schema rejects it too, but inventories also come from files); a pattern given
/// twice, or an exact `spec.pricing` entry for a model `spec.models` already prices, is a
/// warning (the first is used): they are the only equally specific declarations that overlap.
fn declared_prices(
    cx: &mut Cx<'_>,
    key: &ObjectKey,
    models: &BTreeMap<String, ModelSnapshot>,
    specs: &[ModelPriceSpec],
) -> Vec<PriceRule> {
    let mut out: Vec<PriceRule> = models
        .values()
        .filter_map(|m| {
            m.pricing.clone().map(|pricing| PriceRule {
                model: m.name.clone(),
                pricing,
            })
        })
        .collect();
    for (i, p) in specs.iter().enumerate() {
        if let Err(e) = PricePattern::parse(&p.model) {
            cx.error(
                key,
                ConditionType::Ready,
                "InvalidPricing",
                format!("spec.pricing[{i}]: {e}"),
            );
            continue;
        }
        if out.iter().any(|r| r.model == p.model) {
            cx.warn(
                key,
                ConditionType::Ready,
                "DuplicatePrice",
                format!(
                    "spec.pricing[{i}]: \"{}\" is priced twice; the first is used",
                    p.model
                ),
            );
            continue;
        }
        out.push(PriceRule {
            model: p.model.clone(),
            pricing: p.price.clone(),
        });
    }
    out
}

pub(crate) fn compile_backends(cx: &mut Cx<'_>) -> Backends {
    let inv = cx.inv;
    let mut out = Backends::new();
    for (key, b) in sorted(cx, Kind::Backend, &inv.backends, || Details::Backend {
        url: None,
    }) {
        let spec = &b.spec;
        let url = backend_url(cx, &key, spec);
        cx.set_details(&key, Details::Backend { url: url.clone() });
        let api_key = spec
            .auth
            .as_ref()
            .and_then(|a| cx.secret(&key, Severity::Error, "bearer token", &a.secret_ref));
        let mut models = declared_models(cx, &key, &spec.models);
        for m in b.status.iter().flat_map(|s| &s.models) {
            models
                .entry(m.model.clone())
                .or_insert_with(|| ModelSnapshot {
                    name: m.model.clone(),
                    capabilities: crate::common::ModelCapabilities {
                        chat: m.can_chat,
                        completions: m.can_prompt,
                        embeddings: m.can_embed,
                        streaming: m.can_stream,
                        tools: false,
                        vision: false,
                    },
                    context_length: m.context_length,
                    pricing: None,
                });
        }
        if models.is_empty() {
            cx.warn(
                &key,
                ConditionType::Ready,
                "NoModels",
                "no models declared in spec.models and none observed yet".into(),
            );
        }
        // Probed health: a Reachable=False condition written by the operator takes the backend
        // out of load balancing without removing it from the table.
        let healthy = !b
            .status
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.type_ == "Reachable" && c.status == "False");
        if cx.has_error(&key) {
            continue;
        }
        let Some(url) = url else { continue };
        out.insert(
            key.key(),
            BackendSnapshot {
                key: key.key(),
                type_: spec.type_,
                url,
                api_key,
                models: models.into_values().collect(),
                weight: spec.weight,
                max_concurrency: spec.max_concurrency,
                healthy,
                timeouts: timeouts_ms(spec.timeouts.as_ref()),
            },
        );
    }
    out
}

fn backend_url(cx: &mut Cx<'_>, key: &ObjectKey, spec: &BackendSpec) -> Option<String> {
    match (&spec.base_url, &spec.service_ref) {
        (Some(u), None) => {
            let u = u.trim_end_matches('/').to_owned();
            // Not echoed into status.url when rejected (it may carry credentials).
            check_url(cx, key, "spec.baseUrl", &u).then_some(u)
        }
        (None, Some(s)) => {
            let service_key = format!("{}/{}", key.namespace, s.name);
            let service = match &cx.inv.services {
                None => None,
                Some(services) => match services.get(&service_key) {
                    Some(info) => Some(info),
                    None => {
                        cx.error(
                            key,
                            ConditionType::ResolvedRefs,
                            "ServiceNotFound",
                            format!("Service \"{}\" not found", s.name),
                        );
                        return None;
                    }
                },
            };
            let port = match &s.port {
                IntOrString::Int(p) if (1..=65535).contains(p) => *p,
                IntOrString::Int(p) => {
                    cx.error(
                        key,
                        ConditionType::Ready,
                        "InvalidPort",
                        format!("serviceRef port {p} is out of range"),
                    );
                    return None;
                }
                IntOrString::String(name) => {
                    let found = service
                        .and_then(|info| {
                            info.ports
                                .iter()
                                .find(|(n, _)| n.as_deref() == Some(name.as_str()))
                        })
                        .map(|(_, p)| *p);
                    match found {
                        Some(p) => p,
                        None => {
                            cx.error(
                                key,
                                ConditionType::ResolvedRefs,
                                "PortNotFound",
                                format!("Service \"{}\" has no port named \"{name}\"", s.name),
                            );
                            return None;
                        }
                    }
                }
            };
            let scheme = match s.scheme {
                Scheme::Http => "http",
                Scheme::Https => "https",
            };
            let path = s.path.trim_end_matches('/');
            Some(format!(
                "{scheme}://{}.{}.svc:{port}{path}",
                s.name, key.namespace
            ))
        }
        _ => {
            cx.error(
                key,
                ConditionType::Ready,
                "InvalidEndpoint",
                "exactly one of spec.baseUrl and spec.serviceRef must be set".into(),
            );
            None
        }
    }
}

/// Rejects URLs with credentials, fragments or a missing host; returns whether it is valid.
fn check_url(cx: &mut Cx<'_>, key: &ObjectKey, field: &str, url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else {
        cx.error(
            key,
            ConditionType::Ready,
            "InvalidURL",
            format!("{field} must start with http:// or https://"),
        );
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        cx.error(
            key,
            ConditionType::Ready,
            "InvalidURL",
            format!("{field} has no host"),
        );
    } else if authority.contains('@') {
        // Never print the URL: it holds credentials.
        cx.error(
            key,
            ConditionType::Ready,
            "InvalidURL",
            format!("{field} must not carry credentials; use a Secret reference"),
        );
    } else if url.contains('#') {
        cx.error(
            key,
            ConditionType::Ready,
            "InvalidURL",
            format!("{field} must not have a fragment"),
        );
    } else {
        return true;
    }
    false
}

fn declared_models(
    cx: &mut Cx<'_>,
    key: &ObjectKey,
    specs: &[ModelSpec],
) -> BTreeMap<String, ModelSnapshot> {
    let mut out = BTreeMap::new();
    for m in specs {
        if out.contains_key(&m.name) {
            cx.warn(
                key,
                ConditionType::Ready,
                "DuplicateModel",
                format!("model \"{}\" is declared twice; the first is used", m.name),
            );
            continue;
        }
        out.insert(
            m.name.clone(),
            ModelSnapshot {
                name: m.name.clone(),
                capabilities: m.capabilities.clone(),
                context_length: m.context_length,
                pricing: m.pricing.clone(),
            },
        );
    }
    out
}
