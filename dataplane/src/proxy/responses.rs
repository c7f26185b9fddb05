//! The OpenAI Responses API (`/v1/responses`) in the pipeline: what differs from the other
//! generating endpoints once the request has been identified, admitted and checked by the
//! guardrails (which scan its `instructions` and `input`, see `guardrails::fields::RESPONSES`).
//!
//! - **Native**: a Provider of type `openai` (OpenAI proper) gets the request as it came, at
//!   `{baseUrl}/responses`, with the target's model; its answer and stream are relayed as
//!   they are (checked, scrubbed of credentials, recorded with the usage of the response
//!   object or of `response.completed`). Built-in tools work there.
//! - **Translated**: every other target (OpenAI-dialect servers such as vLLM, Ollama or
//!   OpenRouter, which have no or partial Responses support, and Anthropic) gets chat
//!   completions from [`translate::responses_to_chat`] (then the chat → Anthropic translation
//!   in `attempt`), and its answer or stream comes back through
//!   [`translate::chat_response_to_responses`] / `ChatToResponsesStream`. Built-in tools and
//!   other things chat completions cannot express let the route's next target try (a native
//!   fallback serves them); when none does, the caller gets 400 naming them.
//! - **State**: each answered response is kept in the workspace's [`ResponseStore`] (unless
//!   the request says `store: false`) with its whole input. `previous_response_id` is resolved
//!   there before any upstream call: unknown, evicted or from another workspace, 404
//!   `previous_response_not_found`. A translated call sends the previous input and output, then
//!   the new input; a native call to the Provider that produced the previous response passes
//!   the id on (OpenAI keeps its own state), any other target gets the expanded input.
//!
//! Response ids are `resp_` + a random UUID (simple form) per call for translated responses;
//! a native response keeps OpenAI's id.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use switchyard_routing::{Dialect, Endpoint, RequestInfo};

use super::answer::{self, Fault, Summary};
use crate::errors::{ApiError, ErrorKind};
use crate::identity;
use crate::relay::Relay;
use crate::response_store::{ResponseStore, StoredResponse};
use crate::state::AppState;
use crate::translate::{self, TranslateError};
use crate::upstream::Upstream;

/// Longest `previous_response_id` looked up (OpenAI's ids are ~50 characters).
const MAX_ID_LEN: usize = 256;

/// `POST /v1/responses`.
pub async fn create(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    super::handle(s, Endpoint::Responses, headers, body).await
}

/// `GET /v1/responses`: Codex CLI tries a WebSocket (`Upgrade: websocket`) first. The data
/// plane serves the Responses API over HTTP only; 426 Upgrade Required is the answer on which
/// Codex falls back to HTTP at once (its own tests' mock servers answer the WebSocket GET with
/// it, `codex-rs/app-server/tests/suite/v2/guardian*.rs`, and `codex-rs/core/src/client.rs`
/// maps 426 on the WebSocket connect to its HTTP fallback). A plain GET is 405.
pub async fn websocket(headers: HeaderMap) -> Response {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let (status, message) = if upgrade {
        (
            StatusCode::UPGRADE_REQUIRED,
            "the Responses API is served over HTTP here, not WebSocket: POST /v1/responses",
        )
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST /v1/responses to create a response",
        )
    };
    let mut r = ApiError::invalid(message)
        .code("unsupported_transport")
        .into_response_for(Dialect::OpenAi);
    *r.status_mut() = status;
    if !upgrade {
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    r
}

/// `GET /v1/responses/{id}`: a response of the caller's workspace, from the store (a native
/// response too: the store holds the object as OpenAI answered it).
pub async fn get(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = identified(&s, &headers).and_then(|(_, workspace)| {
        s.responses
            .get(&workspace, &id)
            .ok_or_else(|| not_found(&id))
    });
    match found {
        Ok(r) => json_response(&r.response),
        Err(e) => e.into_response_for(Dialect::OpenAi),
    }
}

/// `DELETE /v1/responses/{id}`: removes a response of the caller's workspace from the store; a
/// native response is deleted at the Provider that produced it first (OpenAI keeps its own
/// copy), and stays stored when that fails.
pub async fn delete(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let deleted = async {
        let (caller, workspace) = identified(&s, &headers)?;
        let found = s
            .responses
            .get(&workspace, &id)
            .ok_or_else(|| not_found(&id))?;
        if let Some(provider) = &found.native_provider {
            delete_at_provider(&s, &caller, &headers, provider, &id).await?;
        }
        s.responses.remove(&workspace, &id);
        Ok::<_, ApiError>(())
    };
    match deleted.await {
        // The body other Responses servers answer (`object: "response.deleted"`).
        Ok(()) => json_response(&json!({"id": id, "object": "response.deleted", "deleted": true})),
        Err(e) => e.into_response_for(Dialect::OpenAi),
    }
}

/// The caller and the key of its workspace.
fn identified(s: &AppState, headers: &HeaderMap) -> Result<(identity::Caller, String), ApiError> {
    if !s.is_ready() {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "no routing snapshot loaded yet",
        ));
    }
    let table = s.table();
    let info = RequestInfo {
        client: crate::classify::client_name(headers),
        ..Default::default()
    };
    let (caller, workspace) =
        identity::identify(&table, headers, &info, s.settings.require_client_key)?;
    Ok((caller, workspace.key.clone()))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("Response with id '{}' not found.", printable(id)),
    )
    .param("response_id")
    .code("response_not_found")
}

/// Longest wait for a Provider's answer to a `DELETE`.
const DELETE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `DELETE {baseUrl}/responses/{id}` at the Provider `provider` (its credentials, headers and
/// the egress policy as for any call). Gone already (404) counts as deleted.
async fn delete_at_provider(
    s: &AppState,
    caller: &identity::Caller,
    headers: &HeaderMap,
    provider: &str,
    id: &str,
) -> Result<(), ApiError> {
    let failed = |why: String| ApiError::new(ErrorKind::Upstream, why);
    let table = s.table();
    let target = switchyard_crds::snapshot::TargetSnapshot {
        kind: switchyard_crds::snapshot::TargetKind::Provider,
        key: provider.to_owned(),
        model: None,
    };
    let up = Upstream::provider(&table.snapshot, &target, "").ok_or_else(|| {
        failed(format!(
            "the Provider {provider} that produced response {} is gone",
            printable(id)
        ))
    })?;
    // Ids the store holds are the Provider's own; only URL-safe ones are forwarded.
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(
            ApiError::invalid("the response id has characters ids never have").param("response_id"),
        );
    }
    let url = reqwest::Url::parse(&format!("{}/responses/{id}", up.base.trim_end_matches('/')))
        .map_err(|e| failed(format!("{}: bad URL: {e}", up.name)))?;
    s.settings
        .egress
        .check_url(&url)
        .map_err(|e| failed(format!("{}: {e}", up.name)))?;
    let mut req = s.client.get(None).delete(url);
    for (name, value) in up.auth_headers(caller.passthrough.as_deref())? {
        req = req.header(name, value);
    }
    for h in &up.headers {
        req = req.header(h.name.as_str(), h.value.expose());
    }
    let scrubber = super::scrub::Scrubber::for_attempt(&up, caller, headers);
    match tokio::time::timeout(DELETE_TIMEOUT, req.send()).await {
        Err(_) => Err(ApiError::new(
            ErrorKind::Timeout,
            format!("{} did not answer the DELETE in time", up.name),
        )),
        Ok(Err(e)) => Err(failed(scrubber.error_text(&format!(
            "{}: {}",
            up.name,
            super::scrub::error_chain(&e)
        )))),
        Ok(Ok(r)) if r.status().is_success() || r.status() == StatusCode::NOT_FOUND => Ok(()),
        Ok(Ok(r)) => Err(failed(format!(
            "{} answered {} to deleting response {}",
            up.name,
            r.status().as_u16(),
            printable(id)
        ))),
    }
}

fn json_response(v: &Value) -> Response {
    let mut r = v.to_string().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An id as errors quote it: bounded, control characters dropped.
fn printable(id: &str) -> String {
    crate::classify::truncate(id, MAX_ID_LEN)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// Custom instructions of the workspace go before the request's own `instructions`.
pub(crate) fn add_instructions(body: &mut Value, instructions: &str) {
    let Some(o) = body.as_object_mut() else {
        return;
    };
    let text = match o.get("instructions").and_then(Value::as_str) {
        Some(own) if !own.is_empty() => format!("{instructions}\n\n{own}"),
        _ => instructions.to_owned(),
    };
    o.insert("instructions".into(), Value::String(text));
}

/// A Responses request on its way to the targets: its id, the previous response it continues,
/// and where its answer is kept.
#[derive(Debug)]
pub(crate) struct ResponsesCall<'a> {
    /// `resp_…` of a translated response.
    pub(crate) id: String,
    /// The workspace whose store holds the conversation.
    workspace: String,
    /// The request as the caller sent it (after custom instructions and guardrails).
    request: &'a Value,
    /// The response named by `previous_response_id`.
    previous: Option<Arc<StoredResponse>>,
    /// The answer is kept (`store`, true unless `false`).
    store: bool,
}

/// What an attempt sends upstream.
pub(crate) enum Outbound {
    /// The Responses request for OpenAI (its model already the target's).
    Native(Value),
    /// A chat completions request, to go on in the target's dialect.
    Chat(Value),
}

/// The `code` of the 400 for a feature chat completions cannot express.
const UNSUPPORTED_CODE: &str = "unsupported_parameter";

impl Outbound {
    /// Whether `e` (from [`ResponsesCall::outbound`]) refuses a feature the target's API cannot
    /// express, rather than a malformed request: another target may serve it.
    pub(crate) fn unsupported(e: &ApiError) -> bool {
        e.code == Some(UNSUPPORTED_CODE)
    }
}

impl<'a> ResponsesCall<'a> {
    /// Resolves the request's `previous_response_id` in `workspace`'s store.
    ///
    /// # Errors
    /// 400 for a `previous_response_id` that is not a string, 404
    /// `previous_response_not_found` for one the store does not hold for this workspace.
    pub(crate) fn new(
        store: &ResponseStore,
        workspace: &str,
        request: &'a Value,
    ) -> Result<Self, ApiError> {
        let previous = match request.get("previous_response_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(store.get(workspace, id).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::NotFound,
                    format!(
                        "Previous response with id '{}' not found: it was never stored in this \
                         workspace, was deleted, or was evicted from this gateway's store",
                        printable(id)
                    ),
                )
                .param("previous_response_id")
                .code("previous_response_not_found")
            })?),
            Some(_) => {
                return Err(ApiError::invalid("`previous_response_id` must be a string")
                    .param("previous_response_id"));
            }
        };
        Ok(Self {
            id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
            workspace: workspace.to_owned(),
            request,
            previous,
            store: request.get("store").and_then(Value::as_bool) != Some(false),
        })
    }

    /// Whether `up` serves the Responses API natively.
    pub(crate) fn native(up: &Upstream) -> bool {
        up.is_openai && up.dialect == Dialect::OpenAi
    }

    /// The request's own input items (a string input is one user message).
    fn own_input(&self) -> Vec<Value> {
        match self.request.get("input") {
            Some(Value::String(s)) => {
                vec![json!({"type": "message", "role": "user", "content": s})]
            }
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        }
    }

    /// The whole input: the previous conversation, then the request's input.
    fn full_input(&self) -> Vec<Value> {
        let own = self.own_input();
        match &self.previous {
            Some(p) => p.continued(&own),
            None => own,
        }
    }

    /// The request with the previous conversation expanded into `input`.
    fn expanded(&self) -> Value {
        let mut req = self.request.clone();
        if self.previous.is_some()
            && let Some(o) = req.as_object_mut()
        {
            o.remove("previous_response_id");
            o.insert("input".into(), Value::Array(self.full_input()));
        }
        req
    }

    /// What to send to `up`.
    ///
    /// # Errors
    /// 400 when the request cannot be translated for a chat target (naming the parameter,
    /// built-in tools by their type).
    pub(crate) fn outbound(&self, up: &Upstream) -> Result<Outbound, ApiError> {
        if Self::native(up) {
            let continues_there = self
                .previous
                .as_ref()
                .is_some_and(|p| p.native_provider.as_deref() == Some(up.name.as_str()));
            let mut req = if continues_there {
                self.request.clone()
            } else {
                self.expanded()
            };
            if let Some(o) = req.as_object_mut() {
                o.insert("model".into(), Value::String(up.model.clone()));
                o.remove("tags");
            }
            return Ok(Outbound::Native(req));
        }
        translate::responses_to_chat(&self.expanded(), &up.model)
            .map(Outbound::Chat)
            .map_err(translate_error)
    }

    /// A non-streamed 2xx answer of `up`, checked, translated for a chat target, kept in the
    /// store; the bytes for the caller and what the answer told about the call.
    pub(crate) fn answer(
        &self,
        state: &AppState,
        up: &Upstream,
        bytes: Bytes,
    ) -> Result<(Bytes, Summary), Fault> {
        if Self::native(up) {
            let summary = answer::check(Endpoint::Responses, up.dialect, &bytes)?;
            if self.store
                && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
            {
                self.keep(&state.responses, v, Some(&up.name));
            }
            return Ok((bytes, summary));
        }
        let summary = answer::check(Endpoint::ChatCompletions, up.dialect, &bytes)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| Fault::Invalid(e.to_string()))?;
        let chat = match up.dialect {
            Dialect::Anthropic => translate::anthropic_response_to_openai(&v, &up.model),
            Dialect::OpenAi => v,
        };
        let response = translate::chat_response_to_responses(&chat, self.request, &self.id);
        let out = Bytes::from(response.to_string());
        if self.store {
            self.keep(&state.responses, response, None);
        }
        Ok((out, summary))
    }

    /// The relay of a streamed answer of `up`.
    pub(crate) fn relay(&self, up: &Upstream) -> Relay {
        Relay::responses(
            up.dialect,
            Self::native(up),
            &up.model,
            &self.id,
            self.request,
        )
    }

    /// What keeps a streamed answer of `up` once it completed (`None`: `store: false`).
    pub(crate) fn pending(&self, state: &Arc<AppState>, up: &Upstream) -> Option<PendingStore> {
        self.store.then(|| PendingStore {
            state: state.clone(),
            workspace: self.workspace.clone(),
            input: self.full_input(),
            native_provider: Self::native(up).then(|| up.name.clone()),
        })
    }

    fn keep(&self, store: &ResponseStore, response: Value, native_provider: Option<&str>) {
        keep(
            store,
            &self.workspace,
            self.full_input(),
            response,
            native_provider.map(str::to_owned),
        );
    }
}

/// Keeps a completed response under its own `id` (OpenAI's for a native response).
fn keep(
    store: &ResponseStore,
    workspace: &str,
    input: Vec<Value>,
    response: Value,
    native_provider: Option<String>,
) {
    let Some(id) = response
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN)
        .map(str::to_owned)
    else {
        return;
    };
    let kept = store.put(
        workspace,
        &id,
        StoredResponse {
            input,
            response,
            native_provider,
        },
    );
    if !kept {
        tracing::debug!(response_id = %id, "response larger than the store's bound: not kept");
    }
}

/// A streamed response to keep once its stream completed.
pub(crate) struct PendingStore {
    state: Arc<AppState>,
    workspace: String,
    input: Vec<Value>,
    native_provider: Option<String>,
}

impl PendingStore {
    /// Keeps the stream's final response object.
    pub(crate) fn complete(self, response: Value) {
        keep(
            &self.state.responses,
            &self.workspace,
            self.input,
            response,
            self.native_provider,
        );
    }
}

/// A request that cannot be translated for a chat completions target: 400 naming the
/// parameter (and a built-in tool by its type).
fn translate_error(e: TranslateError) -> ApiError {
    match e {
        TranslateError::Invalid { param, message } => {
            ApiError::invalid(format!("invalid `{param}`: {message}")).param(param)
        }
        TranslateError::Unsupported(what) => {
            let param = what.split(' ').next().unwrap_or(&what).to_owned();
            ApiError::invalid(format!(
                "`{what}` is not supported when the model is served through chat completions \
                 (built-in tools need a Provider of type openai)"
            ))
            .param(param)
            .code(UNSUPPORTED_CODE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_instructions_go_first() {
        let mut b = json!({"input": "hi", "instructions": "Be X."});
        add_instructions(&mut b, "Be brief.");
        assert_eq!(b["instructions"], "Be brief.\n\nBe X.");
        let mut b = json!({"input": "hi"});
        add_instructions(&mut b, "Be brief.");
        assert_eq!(b["instructions"], "Be brief.");
    }

    #[test]
    fn previous_responses_are_found_in_the_callers_workspace_only() {
        let store = ResponseStore::new(crate::response_store::StoreLimits::default());
        store.put(
            "ns/a",
            "resp_1",
            StoredResponse {
                input: vec![json!({"type": "message", "role": "user", "content": "one"})],
                response: json!({"id": "resp_1", "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "two"}]}]}),
                native_provider: None,
            },
        );
        let req = json!({"model": "m", "input": "three", "previous_response_id": "resp_1"});
        let call = ResponsesCall::new(&store, "ns/a", &req).unwrap();
        let expanded = call.expanded();
        assert!(expanded.get("previous_response_id").is_none());
        let input = expanded["input"].as_array().unwrap();
        assert_eq!(input.len(), 3);
        assert_eq!(input[0]["content"], "one");
        assert_eq!(input[1]["role"], "assistant");
        assert_eq!(input[2]["content"], "three");
        assert!(call.id.starts_with("resp_") && call.id.len() == 37);

        let e = ResponsesCall::new(&store, "ns/b", &req).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.code, Some("previous_response_not_found"));
        assert!(e.message.contains("resp_1"));
        let bad = json!({"input": "x", "previous_response_id": 7});
        assert_eq!(
            ResponsesCall::new(&store, "ns/a", &bad).unwrap_err().kind,
            ErrorKind::InvalidRequest
        );
    }

    #[test]
    fn built_in_tools_are_refused_by_name() {
        let e = translate_error(TranslateError::Unsupported("tools[0] (web_search)".into()));
        assert!(e.message.contains("web_search"), "{}", e.message);
        assert_eq!(e.param.as_deref(), Some("tools[0]"));
        let e = translate_error(TranslateError::invalid(
            "input[2].type",
            "unknown item type",
        ));
        assert_eq!(e.param.as_deref(), Some("input[2].type"));
    }
}
