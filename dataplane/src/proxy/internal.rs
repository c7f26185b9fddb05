//! Calls the data plane makes for itself — a TaskChain's model and embedding calls — through
//! the normal routing path: RouterPolicies, MuxRules and declared models (or the task's explicit
//! target), with breakers, retries, fallbacks and timeouts ([`super::failover`]). Each call has
//! an interception of its own, marked as a call of the run (`chain`, `thread_root_id`), with
//! the run's workspace, caller, session, tags and client. Calls are not admitted against the
//! workspace limits on their own: the run was, and its record charges their tokens.

use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::Value;
use switchyard_crds::provider::ProviderType;
use switchyard_crds::snapshot::{TargetKind, TargetSnapshot, WorkspaceSnapshot};
use switchyard_routing::route::{self, Route, RouteSource};
use switchyard_routing::table::RoutingTable;
use switchyard_routing::{Endpoint, RequestInfo};

use super::Handled;
use super::call::Call;
use super::tracker::Tracker;
use crate::classify;
use crate::errors::{ApiError, ErrorKind};
use crate::identity::Caller;
use crate::record::Cost;
use crate::state::AppState;
use crate::usage::Usage;

/// Who an internal call is made for: the run it belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub(crate) state: &'a Arc<AppState>,
    pub(crate) table: &'a Arc<RoutingTable>,
    pub(crate) workspace: &'a WorkspaceSnapshot,
    pub(crate) caller: &'a Caller,
    pub(crate) headers: &'a HeaderMap,
    /// The run's request.
    pub(crate) info: &'a RequestInfo,
    /// Chain key.
    pub(crate) chain: &'a str,
    /// The run's interception id.
    pub(crate) run_id: uuid::Uuid,
    /// The run's request id (calls get `ID:N`).
    pub(crate) request_id: &'a str,
}

/// Where an internal call goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Destination<'a> {
    /// The task's explicit target (its route), if any.
    pub(crate) target: Option<&'a TargetSnapshot>,
    /// Models in preference order: each is routed in turn until one answers.
    pub(crate) models: &'a [String],
    /// Only targets of these provider/backend types (empty: any).
    pub(crate) providers: &'a [ProviderType],
    /// RouterPolicy `match.stepType` (the task's handler).
    pub(crate) step_type: &'a str,
}

/// A successful internal call.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The response body (OpenAI dialect).
    pub(crate) body: Value,
    /// Its usage.
    pub(crate) usage: Usage,
    /// Its cost.
    pub(crate) cost: Cost,
}

/// Largest internal answer read back (the upstream read is bounded the same way).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Makes one internal call (`seq` numbers the calls of a run: request id `RUN:seq`).
pub(crate) async fn call(
    origin: Origin<'_>,
    seq: u32,
    endpoint: Endpoint,
    body: Value,
    dest: Destination<'_>,
) -> Result<Answer, ApiError> {
    let Origin {
        state,
        table,
        workspace,
        caller,
        headers,
        info: parent,
        chain,
        run_id,
        request_id,
    } = origin;
    let request_id = format!("{request_id}:{seq}");
    let mut tracker = Tracker::new(
        state.clone(),
        endpoint,
        headers,
        &request_id,
        table.version(),
    );
    tracker.call_of_run(chain, run_id);
    let models: Vec<String> = if dest.models.is_empty() {
        dest.target
            .and_then(|t| t.model.clone())
            .into_iter()
            .collect()
    } else {
        dest.models.to_vec()
    };
    if models.is_empty() {
        let e = ApiError::invalid("the task names no model (set execute.model or execute.models)");
        tracker.failed(&e);
        return Err(e);
    }
    let user_prompt = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .map(|m| classify::truncate(&classify::message_text(m), classify::MAX_PROMPT_RECORD))
        .or_else(|| {
            body.get("input")
                .and_then(Value::as_str)
                .map(|s| classify::truncate(s, classify::MAX_PROMPT_RECORD))
        });
    let mut last: Option<ApiError> = None;
    for (i, model) in models.iter().enumerate() {
        let mut body = body.clone();
        if let Some(o) = body.as_object_mut() {
            o.insert("model".into(), Value::String(model.clone()));
        }
        let info = RequestInfo {
            endpoint_type: Some(endpoint.endpoint_type()),
            fim: false,
            filenames: user_prompt
                .as_deref()
                .map(classify::filenames)
                .unwrap_or_default(),
            stream: false,
            tools: body
                .get("tools")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty()),
            images: false,
            model: model.clone(),
            tags: parent.tags.clone(),
            metadata: None,
            session_id: parent.session_id.clone(),
            client: parent.client.clone(),
            user: parent.user.clone(),
            purpose: parent.purpose.clone(),
            step_type: Some(dest.step_type.to_owned()),
            parallelism: parent.parallelism,
            user_prompt: user_prompt.clone(),
        };
        if i == 0 {
            tracker.classified(&info);
            tracker.identified(caller, workspace);
        }
        let routes = match dest.target {
            Some(t) => Ok(vec![Route {
                source: RouteSource::Chain(chain.to_owned()),
                targets: vec![TargetSnapshot {
                    kind: t.kind,
                    key: t.key.clone(),
                    model: Some(t.model.clone().unwrap_or_else(|| model.clone())),
                }],
            }]),
            None => route::candidates(table, workspace, &info).map_err(ApiError::from),
        }
        .and_then(|r| of_types(table, r, dest.providers, model));
        let routes = match routes {
            Ok(r) => r,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let bytes = serde_json::to_vec(&body).map_or(0, |b| b.len());
        let call = Call {
            state,
            endpoint,
            headers,
            body: &body,
            info: &info,
            caller,
            responses: None,
        };
        let arrived = tokio::time::Instant::now();
        match super::failover::run(&call, table, &routes, bytes, arrived, &mut tracker).await {
            Ok(Handled::Done(resp)) => {
                let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER_BYTES)
                    .await
                    .map_err(|e| {
                        ApiError::new(
                            ErrorKind::Internal,
                            format!("reading an internal answer: {e}"),
                        )
                    })?;
                let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
                    ApiError::new(ErrorKind::Upstream, format!("the answer is not JSON: {e}"))
                })?;
                return Ok(Answer {
                    body,
                    usage: tracker.usage(),
                    cost: tracker.cost(),
                });
            }
            Ok(Handled::Stream(_)) => {
                // Internal calls never ask for a stream; a stream here finished its own record.
                return Err(ApiError::new(
                    ErrorKind::Internal,
                    "an internal call was answered with a stream",
                ));
            }
            Err(e) => last = Some(e),
        }
    }
    let e =
        last.unwrap_or_else(|| ApiError::new(ErrorKind::Unavailable, "no model could be called"));
    tracker.failed(&e);
    Err(e)
}

/// Keeps the targets whose type is one of `types` (AffinityGroups are kept: their members are
/// picked later); routes left without targets go.
fn of_types(
    table: &RoutingTable,
    routes: Vec<Route>,
    types: &[ProviderType],
    model: &str,
) -> Result<Vec<Route>, ApiError> {
    if types.is_empty() {
        return Ok(routes);
    }
    let names: Vec<String> = types
        .iter()
        .filter_map(|t| serde_json::to_value(t).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let keep = |t: &TargetSnapshot| {
        let kind = match t.kind {
            TargetKind::Provider => table
                .snapshot
                .provider(&t.key)
                .and_then(|p| serde_json::to_value(p.type_).ok()),
            TargetKind::Backend => table
                .snapshot
                .backend(&t.key)
                .and_then(|b| serde_json::to_value(b.type_).ok()),
            TargetKind::AffinityGroup => return true,
        };
        kind.and_then(|k| k.as_str().map(str::to_owned))
            .is_some_and(|k| names.contains(&k))
    };
    let out: Vec<Route> = routes
        .into_iter()
        .filter_map(|mut r| {
            r.targets.retain(keep);
            (!r.targets.is_empty()).then_some(r)
        })
        .collect();
    if out.is_empty() {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "no route for model \"{model}\" to a target of type {}",
                names.join(" or ")
            ),
        )
        .code("model_not_found"));
    }
    Ok(out)
}
