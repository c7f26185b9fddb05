//! Backend runtime state (seed 002): periodic probes fill Backend status with the models the
//! server actually serves and the last error, and Providers with `discoverModels` get their
//! model list the same way. A backend is reported unreachable only after `failureThreshold`
//! failed probes in a row; the compiler turns `Reachable=False` into "not healthy" so the data
//! planes stop balancing to it.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use switchyard_crds::backend::{BackendType, ModelDetails, ObservedModel};
use switchyard_crds::provider::ProviderType;

use crate::status::ProbeResult;

/// Most models whose details are fetched per Ollama probe.
const MAX_OLLAMA_SHOW: usize = 32;

/// One thing to probe.
#[derive(Clone, Debug)]
pub struct Target {
    /// Object key.
    pub key: String,
    /// How to talk to it.
    pub flavor: Flavor,
    /// Base URL of its OpenAI-compatible API (or Anthropic root).
    pub url: String,
    /// Bearer token / API key.
    pub api_key: Option<String>,
    /// Per-probe timeout.
    pub timeout: Duration,
    /// Failures in a row before it counts as unreachable.
    pub failure_threshold: u32,
}

/// Probe dialects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `GET {url}/models` (vLLM, LM Studio, llama.cpp, OpenAI-compatible, hosted OpenAI-dialect).
    OpenAi,
    /// Ollama: `GET /api/tags` and `POST /api/show`.
    Ollama,
    /// Anthropic: `GET /v1/models` with `x-api-key`.
    Anthropic,
}

impl Flavor {
    /// For a backend type.
    pub fn of_backend(t: BackendType) -> Self {
        match t {
            BackendType::Ollama => Self::Ollama,
            _ => Self::OpenAi,
        }
    }

    /// For a provider type.
    pub fn of_provider(t: ProviderType) -> Self {
        match t {
            ProviderType::Anthropic => Self::Anthropic,
            _ => Self::OpenAi,
        }
    }
}

/// Probes with memory of consecutive failures.
#[derive(Debug)]
pub struct Prober {
    client: reqwest::Client,
    failures: HashMap<String, u32>,
    last_good: HashMap<String, Vec<ObservedModel>>,
}

impl Prober {
    /// A prober using `client` (no redirects, as for the data plane).
    pub fn new(client: reqwest::Client) -> Self {
        Self {
            client,
            failures: HashMap::new(),
            last_good: HashMap::new(),
        }
    }

    /// Probes one target. While failures stay under the threshold the last good model list is
    /// kept and the target still counts as reachable (with the error reported).
    pub async fn probe(&mut self, t: &Target) -> ProbeResult {
        let at = Timestamp::now();
        let result = tokio::time::timeout(t.timeout, list_models(&self.client, t)).await;
        let outcome = match result {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", t.timeout.as_millis())),
        };
        match outcome {
            Ok(models) => {
                self.failures.remove(&t.key);
                self.last_good.insert(t.key.clone(), models.clone());
                ProbeResult {
                    reachable: true,
                    error: None,
                    models,
                    at,
                }
            }
            Err(e) => {
                let n = self.failures.entry(t.key.clone()).or_insert(0);
                *n += 1;
                let reachable = *n < t.failure_threshold.max(1);
                let error = if let Some(k) = &t.api_key {
                    e.replace(k.as_str(), "[REDACTED]")
                } else {
                    e
                };
                ProbeResult {
                    reachable,
                    error: Some(error),
                    models: if reachable {
                        self.last_good.get(&t.key).cloned().unwrap_or_default()
                    } else {
                        Vec::new()
                    },
                    at,
                }
            }
        }
    }
}

async fn get_json(
    client: &reqwest::Client,
    url: &str,
    t: &Target,
    anthropic: bool,
) -> Result<Value, String> {
    let mut req = client.get(url);
    if let Some(k) = &t.api_key {
        req = if anthropic {
            req.header("x-api-key", k)
                .header("anthropic-version", "2023-06-01")
        } else {
            req.bearer_auth(k)
        };
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {}", status.as_u16()));
    }
    resp.json::<Value>()
        .await
        .map_err(|e| format!("GET {url}: not JSON: {e}"))
}

async fn list_models(client: &reqwest::Client, t: &Target) -> Result<Vec<ObservedModel>, String> {
    let base = t.url.trim_end_matches('/');
    match t.flavor {
        Flavor::OpenAi => {
            let v = get_json(client, &format!("{base}/models"), t, false).await?;
            Ok(parse_openai_models(&v))
        }
        Flavor::Anthropic => {
            let v = get_json(client, &format!("{base}/v1/models"), t, true).await?;
            Ok(parse_openai_models(&v))
        }
        Flavor::Ollama => {
            let root = base.strip_suffix("/v1").unwrap_or(base);
            let tags = get_json(client, &format!("{root}/api/tags"), t, false).await?;
            let mut models = parse_ollama_tags(&tags);
            for m in models.iter_mut().take(MAX_OLLAMA_SHOW) {
                let resp = client
                    .post(format!("{root}/api/show"))
                    .json(&serde_json::json!({"model": m.model}))
                    .send()
                    .await;
                if let Ok(r) = resp
                    && r.status().is_success()
                    && let Ok(show) = r.json::<Value>().await
                {
                    apply_ollama_show(m, &show);
                }
            }
            Ok(models)
        }
    }
}

/// `{"data":[{"id":…, "max_model_len"?:…}]}` (OpenAI, vLLM, LM Studio, llama.cpp, Anthropic).
pub fn parse_openai_models(v: &Value) -> Vec<ObservedModel> {
    v.get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let id = m.get("id")?.as_str()?.to_owned();
            let embed = id.contains("embed");
            Some(ObservedModel {
                name: m
                    .get("display_name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                can_chat: !embed,
                can_embed: embed,
                can_prompt: !embed,
                can_stream: !embed,
                context_length: m
                    .get("max_model_len")
                    .or_else(|| m.get("context_length"))
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok()),
                model: id,
                ..Default::default()
            })
        })
        .collect()
}

/// Ollama `/api/tags`.
pub fn parse_ollama_tags(v: &Value) -> Vec<ObservedModel> {
    v.get("models")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let model = m
                .get("model")
                .or_else(|| m.get("name"))?
                .as_str()?
                .to_owned();
            let d = m.get("details");
            let s = |k: &str| {
                d.and_then(|d| d.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            Some(ObservedModel {
                name: m.get("name").and_then(Value::as_str).map(str::to_owned),
                can_chat: true,
                can_prompt: true,
                can_stream: true,
                digest: m.get("digest").and_then(Value::as_str).map(str::to_owned),
                size: m.get("size").and_then(Value::as_i64),
                modified_at: m
                    .get("modified_at")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .map(crate::status::seconds),
                details: d.map(|_| ModelDetails {
                    family: s("family"),
                    families: d
                        .and_then(|d| d.get("families"))
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                    format: s("format"),
                    parameter_size: s("parameter_size"),
                    parent_model: s("parent_model").filter(|p| !p.is_empty()),
                    quantization_level: s("quantization_level"),
                }),
                model,
                ..Default::default()
            })
        })
        .collect()
}

/// Ollama `/api/show`: capabilities and `<arch>.context_length`.
pub fn apply_ollama_show(m: &mut ObservedModel, show: &Value) {
    if let Some(caps) = show.get("capabilities").and_then(Value::as_array) {
        let has = |c: &str| caps.iter().any(|x| x.as_str() == Some(c));
        m.can_chat = has("completion");
        m.can_prompt = has("completion");
        m.can_stream = has("completion");
        m.can_embed = has("embedding");
    }
    if let Some(info) = show.get("model_info").and_then(Value::as_object) {
        m.context_length = info
            .iter()
            .find(|(k, _)| k.ends_with(".context_length"))
            .and_then(|(_, v)| v.as_u64())
            .and_then(|n| u32::try_from(n).ok());
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut s = e.source();
    while let Some(x) = s {
        out.push_str(": ");
        out.push_str(&x.to_string());
        s = x.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::Json;
    use axum::routing::{get, post};
    use serde_json::json;

    use super::*;

    async fn server(router: axum::Router) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
        format!("http://{addr}")
    }

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    fn target(key: &str, flavor: Flavor, url: String, threshold: u32) -> Target {
        Target {
            key: key.into(),
            flavor,
            url,
            api_key: Some("sk-probe-secret-000".into()),
            timeout: Duration::from_secs(2),
            failure_threshold: threshold,
        }
    }

    #[tokio::test]
    async fn openai_models_with_context_length() {
        let base = server(axum::Router::new().route(
            "/v1/models",
            get(|| async { Json(json!({"object": "list", "data": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 131072}, {"id": "bge-embed"}]})) }),
        ))
        .await;
        let mut p = Prober::new(client());
        let r = p
            .probe(&target("ns/vllm", Flavor::OpenAi, format!("{base}/v1"), 3))
            .await;
        assert!(r.reachable && r.error.is_none());
        assert_eq!(r.models[0].model, "meta-llama/Llama-3.1-8B-Instruct");
        assert_eq!(r.models[0].context_length, Some(131072));
        assert!(r.models[1].can_embed && !r.models[1].can_chat);
    }

    #[tokio::test]
    async fn ollama_tags_and_show() {
        let base = server(
            axum::Router::new()
                .route(
                    "/api/tags",
                    get(|| async {
                        Json(json!({"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b", "modified_at": "2025-01-02T03:04:05.123Z", "size": 4920753328u64, "digest": "sha256:abc", "details": {"format": "gguf", "family": "llama", "families": ["llama"], "parameter_size": "8.0B", "quantization_level": "Q4_K_M", "parent_model": ""}}]}))
                    }),
                )
                .route(
                    "/api/show",
                    post(|| async { Json(json!({"capabilities": ["completion", "tools"], "model_info": {"llama.context_length": 131072}})) }),
                ),
        )
        .await;
        let mut p = Prober::new(client());
        let r = p
            .probe(&target(
                "ns/ollama",
                Flavor::Ollama,
                format!("{base}/v1"),
                3,
            ))
            .await;
        assert!(r.reachable, "{:?}", r.error);
        let m = &r.models[0];
        assert_eq!(
            (m.model.as_str(), m.size, m.digest.as_deref()),
            ("llama3.1:8b", Some(4920753328), Some("sha256:abc"))
        );
        assert_eq!(m.context_length, Some(131072));
        assert!(m.can_chat && !m.can_embed);
        let d = m.details.as_ref().unwrap();
        assert_eq!(
            (
                d.family.as_deref(),
                d.quantization_level.as_deref(),
                d.parent_model.as_deref()
            ),
            (Some("llama"), Some("Q4_K_M"), None)
        );
    }

    #[tokio::test]
    async fn unreachable_only_after_the_threshold_and_keys_are_scrubbed() {
        // A port nothing listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", l.local_addr().unwrap());
        drop(l);
        let mut p = Prober::new(client());
        let t = target("ns/down", Flavor::OpenAi, url, 2);
        let first = p.probe(&t).await;
        assert!(first.reachable, "one failure is under the threshold");
        assert!(first.error.is_some());
        let second = p.probe(&t).await;
        assert!(!second.reachable);
        assert!(!second.error.unwrap().contains("sk-probe-secret"));
    }

    #[tokio::test]
    async fn http_errors_are_reported() {
        let base = server(axum::Router::new().route(
            "/v1/models",
            get(|| async { (axum::http::StatusCode::UNAUTHORIZED, "no") }),
        ))
        .await;
        let mut p = Prober::new(client());
        let r = p
            .probe(&target("ns/p", Flavor::OpenAi, format!("{base}/v1"), 1))
            .await;
        assert!(!r.reachable);
        assert!(r.error.unwrap().contains("HTTP 401"));
    }
}
