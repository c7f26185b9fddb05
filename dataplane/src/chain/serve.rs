//! A chain served as an OpenAI-compatible model. The request's messages are the chain's
//! `input` (a chat history); the run executes to the end (its model calls are not streamed);
//! the final output is answered as a chat completion, or streamed as chunks when the caller
//! asked for a stream. A failed run answers in the OpenAI error shape, naming the task.
//!
//! The run is one interception (the request's): `chain` set, no `thread_root_id`, the
//! caller's workspace and initiator, `model_requested: chain/NAME`, the total usage and cost of
//! its model calls, and the outcome. Each model call has its own interception pointing at it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value as Json, json};
use switchyard_crds::snapshot::{TaskChainSnapshot, WorkspaceSnapshot};
use switchyard_routing::table::{RoutingTable, namespace_of};
use switchyard_routing::{Dialect, Endpoint};

use super::handlers::{self, ChatCall, Context, EmbedCall, HookCall};
use super::run::{self, Trace};
use super::{ChatHistory, TaskError, Value};
use crate::errors::{ApiError, ErrorKind};
use crate::proxy::internal::{self, Destination, Origin};
use crate::proxy::{self, ChainOptions, ChainRequest, Handled, Summary, Tracker};
use crate::record::Cost;
use crate::state::AppState;
use crate::usage::Usage;

/// Header asking for the stack trace (like `?stackTrace=true`).
pub const STACK_TRACE_HEADER: &str = "x-switchyard-stack-trace";
/// Largest content piece of a streamed answer, in bytes.
const STREAM_PIECE_BYTES: usize = 256;

/// Whether a query string or the headers ask for the stack trace (`true`, `True`, `1`).
pub fn wants_stack_trace(query: Option<&str>, headers: &HeaderMap) -> bool {
    let yes = |v: &str| matches!(v.trim(), "true" | "True" | "TRUE" | "1");
    query.is_some_and(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| k == "stackTrace" && yes(v))
    }) || headers
        .get(STACK_TRACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(yes)
}

/// The chain a workspace may run under `name` (`NAME`, or `NAMESPACE/NAME` of the workspace's
/// own namespace).
pub fn find<'t>(
    table: &'t RoutingTable,
    workspace: &WorkspaceSnapshot,
    name: &str,
) -> Result<&'t TaskChainSnapshot, ApiError> {
    let ns = namespace_of(&workspace.key);
    let (asked_ns, bare) = name.split_once('/').unwrap_or((ns, name));
    let not_found = || {
        ApiError::new(
            ErrorKind::NotFound,
            format!(
                "chain \"{name}\" not found in namespace \"{ns}\" (workspace \"{}\")",
                workspace.key
            ),
        )
        .param("model")
        .code("chain_not_found")
    };
    if asked_ns != ns || bare.is_empty() || bare.contains('/') {
        return Err(not_found());
    }
    table
        .snapshot
        .task_chain(&format!("{ns}/{bare}"))
        .ok_or_else(not_found)
}

/// `POST /v1/chat/completions` (and `/v1/chains/{name}/chat/completions`): the proxy pipeline,
/// which hands a request for a chain to [`serve`] after identification, admission and
/// guardrails.
pub async fn chat_completions(
    state: Arc<AppState>,
    chain: ChainOptions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let serve: proxy::ServeChain = |req, tracker| Box::pin(serve(req, tracker));
    proxy::handle_with(
        state,
        Endpoint::ChatCompletions,
        chain,
        Some(serve),
        headers,
        body,
    )
    .await
}

/// Runs the chain and answers.
pub(crate) async fn serve(
    req: ChainRequest<'_>,
    tracker: &mut Tracker,
) -> Result<Handled, ApiError> {
    let chain = find(req.table, req.workspace, &req.name)?;
    let name = switchyard_routing::table::name_of(&chain.key).to_owned();
    tracker.chain_run(
        &chain.key,
        format!("{}{name}", super::MODEL_PREFIX),
        req.by_path,
    );
    let messages = req
        .body
        .get("messages")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let input = ChatHistory::new(messages)
        .map_err(|e| ApiError::invalid(e.to_string()).param("messages"))?;
    let client_tools = req
        .body
        .get("tools")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let tool_choice = req.body.get("tool_choice").cloned();
    let wants_usage = req
        .body
        .pointer("/stream_options/include_usage")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let stack_trace = req.stack_trace || wants_stack_trace(None, req.headers);
    let run_id = tracker.id();
    let request_id = tracker.request_id().to_owned();
    let cx = Context::new(chain, run_id.to_string(), client_tools, tool_choice);
    let live = Live {
        origin: Origin {
            state: req.state,
            table: req.table,
            workspace: req.workspace,
            caller: req.caller,
            headers: req.headers,
            info: &req.info,
            chain: &chain.key,
            run_id,
            request_id: &request_id,
        },
        chain,
        seq: AtomicU32::new(0),
        run: Mutex::new(tracker),
    };
    let result = run::run(&cx, &live, Value::Chat(input)).await;
    let tracker = live
        .run
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let usage = tracker.usage();
    match result {
        Ok(done) => {
            let mut answer = completion(&cx, done.output, usage);
            if stack_trace {
                answer["stackTrace"] = trace_json(&done.trace);
            }
            let summary = Summary {
                usage: Some(usage),
                finish_reason: answer
                    .pointer("/choices/0/finish_reason")
                    .and_then(Json::as_str)
                    .map(str::to_owned),
                tools: Vec::new(),
            };
            if req.info.stream {
                return Ok(Handled::Stream(stream(
                    answer,
                    summary,
                    wants_usage,
                    tracker,
                )));
            }
            tracker.answered(summary);
            let mut resp = (StatusCode::OK, answer.to_string()).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(Handled::Done(resp))
        }
        Err(failed) => {
            let e = failed.api_error();
            tracing::info!(chain = %chain.key, task = %failed.task, error = %e.message, "chain run failed");
            tracker.run_failed(&e);
            let mut body = e.body(Dialect::OpenAi);
            if stack_trace {
                body["stackTrace"] = trace_json(&failed.trace);
            }
            let mut resp = (e.kind.status(), body.to_string()).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(s) = e.retry_after {
                h.insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            Ok(Handled::Done(resp))
        }
    }
}

fn trace_json(t: &Trace) -> Json {
    let mut units = serde_json::to_value(&t.units).unwrap_or_else(|_| json!([]));
    if t.dropped > 0
        && let Some(a) = units.as_array_mut()
    {
        a.push(json!({"truncated": t.dropped}));
    }
    units
}

/// The chat completion answering a run: a `convert_to_openai_chat_response` output as it is,
/// anything else as the assistant message (a chat history's last message, with its tool
/// calls), with the chain's model name and the run's usage.
fn completion(cx: &Context<'_>, output: Value, usage: Usage) -> Json {
    let mut answer = match output {
        Value::ChatResponse(r) if r.is_object() => r,
        other => handlers::chat_response(cx, &other),
    };
    answer["model"] = Json::String(cx.model.clone());
    answer["usage"] = usage.to_openai();
    answer
}

/// The answer as an OpenAI chunk stream (`data: …` frames, `data: [DONE]`).
fn stream(answer: Json, summary: Summary, wants_usage: bool, tracker: &mut Tracker) -> Response {
    let frames = chunks(&answer, summary.usage.unwrap_or_default(), wants_usage);
    let mut tracker = tracker.take();
    let route = tracker
        .route_header()
        .and_then(|r| HeaderValue::from_str(r).ok());
    let body = async_stream::stream! {
        for f in frames {
            tracker.mark_first_token();
            yield Ok::<Bytes, std::io::Error>(f);
        }
        tracker.stream_ended(summary, 0, None);
    };
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(r) = route {
        h.insert(crate::proxy::ROUTE_HEADER, r);
    }
    resp
}

/// Splits text into pieces of at most `max` bytes on character boundaries.
fn pieces(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

fn chunks(answer: &Json, usage: Usage, wants_usage: bool) -> Vec<Bytes> {
    let base = |choices: Json| {
        json!({
            "id": answer.get("id").cloned().unwrap_or(Json::Null),
            "object": "chat.completion.chunk",
            "created": answer.get("created").cloned().unwrap_or(Json::Null),
            "model": answer.get("model").cloned().unwrap_or(Json::Null),
            "choices": choices,
        })
    };
    let frame = |v: Json| Bytes::from(format!("data: {v}\n\n"));
    let message = answer
        .pointer("/choices/0/message")
        .cloned()
        .unwrap_or(Json::Null);
    let mut out = vec![frame(base(json!([
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}
    ])))];
    let content = message
        .get("content")
        .and_then(Json::as_str)
        .unwrap_or_default();
    for p in pieces(content, STREAM_PIECE_BYTES) {
        out.push(frame(base(json!([
            {"index": 0, "delta": {"content": p}, "finish_reason": null}
        ]))));
    }
    if let Some(calls) = message.get("tool_calls").and_then(Json::as_array) {
        let indexed: Vec<Json> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                c["index"] = json!(i);
                c
            })
            .collect();
        out.push(frame(base(json!([
            {"index": 0, "delta": {"tool_calls": indexed}, "finish_reason": null}
        ]))));
    }
    let finish = answer
        .pointer("/choices/0/finish_reason")
        .cloned()
        .unwrap_or_else(|| json!("stop"));
    let mut last = base(json!([{"index": 0, "delta": {}, "finish_reason": finish}]));
    if let Some(t) = answer.get("stackTrace") {
        last["stackTrace"] = t.clone();
    }
    out.push(frame(last));
    if wants_usage {
        let mut u = base(json!([]));
        u["usage"] = usage.to_openai();
        out.push(frame(u));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

/// The calls of a live run: model and embedding calls through the routing path, hooks over
/// HTTP. Each call's usage and cost are added to the run's record as they come, so a run the
/// caller abandons is still recorded (cancelled) with what it spent.
struct Live<'a, 't> {
    origin: Origin<'a>,
    chain: &'a TaskChainSnapshot,
    seq: AtomicU32,
    run: Mutex<&'t mut Tracker>,
}

impl Live<'_, '_> {
    fn add(&self, usage: Usage, cost: Cost) {
        let mut run = self
            .run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        run.run_spent(usage, cost);
    }

    async fn internal(
        &self,
        task: &switchyard_crds::task_chain::TaskSpec,
        endpoint: Endpoint,
        body: Json,
    ) -> Result<Json, TaskError> {
        let exec = task.execute.clone().unwrap_or_default();
        let mut models: Vec<String> = exec.model.iter().cloned().collect();
        for m in &exec.models {
            if !models.contains(m) {
                models.push(m.clone());
            }
        }
        let mut providers = exec.providers.clone();
        if let Some(p) = exec.provider
            && !providers.contains(&p)
        {
            providers.insert(0, p);
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let answer = internal::call(
            self.origin,
            seq,
            endpoint,
            body,
            Destination {
                target: self.chain.task_targets.get(&task.id),
                models: &models,
                providers: &providers,
                step_type: task.handler.as_str(),
            },
        )
        .await
        .map_err(TaskError::Model)?;
        self.add(answer.usage, answer.cost);
        Ok(answer.body)
    }
}

impl handlers::Calls for Live<'_, '_> {
    async fn chat(&self, call: ChatCall<'_>) -> Result<Json, TaskError> {
        let body = self
            .internal(call.task, Endpoint::ChatCompletions, call.body)
            .await?;
        body.pointer("/choices/0/message").cloned().ok_or_else(|| {
            TaskError::Model(ApiError::new(
                ErrorKind::Upstream,
                "the model's answer has no choices[0].message",
            ))
        })
    }

    async fn embed(&self, call: EmbedCall<'_>) -> Result<Vec<f64>, TaskError> {
        let body = self
            .internal(call.task, Endpoint::Embeddings, json!({"input": call.text}))
            .await?;
        body.pointer("/data/0/embedding")
            .and_then(Json::as_array)
            .map(|v| v.iter().filter_map(Json::as_f64).collect())
            .ok_or_else(|| {
                TaskError::Model(ApiError::new(
                    ErrorKind::Upstream,
                    "the embedding answer has no data[0].embedding",
                ))
            })
    }

    async fn hook(&self, call: HookCall<'_>) -> Result<Json, TaskError> {
        super::hooks::call(self.origin.state, &self.chain.key, &call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_trace_from_query_or_header() {
        let mut h = HeaderMap::new();
        assert!(wants_stack_trace(Some("stackTrace=true"), &h));
        assert!(wants_stack_trace(Some("a=1&stackTrace=True"), &h));
        assert!(!wants_stack_trace(Some("stackTrace=false"), &h));
        assert!(!wants_stack_trace(None, &h));
        h.insert(STACK_TRACE_HEADER, HeaderValue::from_static("true"));
        assert!(wants_stack_trace(None, &h));
    }

    #[test]
    fn pieces_respect_characters() {
        assert_eq!(pieces("", 4), Vec::<&str>::new());
        assert_eq!(pieces("abcdef", 4), ["abcd", "ef"]);
        assert_eq!(pieces("ééé", 3), ["é", "é", "é"]);
        assert_eq!(pieces("é", 1), ["é"]);
    }

    #[test]
    fn chunks_carry_content_tool_calls_finish_and_usage() {
        let answer = json!({"id": "chatcmpl-x", "created": 1, "model": "chain/c",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                "finish_reason": "tool_calls"}],
            "stackTrace": [{"taskID": "t"}]});
        let usage = Usage {
            input_tokens: 3,
            output_tokens: 2,
            ..Default::default()
        };
        let frames: Vec<String> = chunks(&answer, usage, true)
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        assert_eq!(frames.len(), 6);
        assert!(frames[1].contains("\"content\":\"hello\""));
        assert!(frames[2].contains("\"index\":0") && frames[2].contains("\"tool_calls\""));
        assert!(
            frames[3].contains("\"finish_reason\":\"tool_calls\"")
                && frames[3].contains("stackTrace")
        );
        assert!(frames[4].contains("\"total_tokens\":5"));
        assert_eq!(frames[5], "data: [DONE]\n\n");
    }
}
