//! The OpenAI Responses API (`/v1/responses`) through the data plane: translated for a chat
//! completions target and an Anthropic target (streamed and not, a function tool call and its
//! `function_call_output` follow-up), relayed natively to a Provider of type `openai` (a small
//! recorded Responses server), records, refusals, the response store (`previous_response_id`,
//! `GET`/`DELETE /v1/responses/{id}`, per-workspace isolation, eviction) and the WebSocket
//! fallback answer for Codex CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing;
use serde_json::{Value, json};
use switchyard_dataplane::record::{Interception, Outcome};
use switchyard_mock::{Behavior, MockUpstream, ScriptRule};
use switchyard_tests::harness::manifests::{
    guardrails, provider, router_policy, to_provider, workspace,
};
use switchyard_tests::harness::{Answer, Gateway, GatewayOptions};

/// A GitHub personal access token shape, fake.
const TOKEN: &str = "ghp_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2";

async fn mock() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn setup_with(options: GatewayOptions) -> (MockUpstream, Gateway) {
    let mock = mock().await;
    let base = mock.base_url();
    let mut default = workspace("default", true);
    default["spec"]["customInstructions"] = json!("Answer in English.");
    let gw = Gateway::start_objects_with(
        &[
            default,
            workspace("other", false),
            guardrails(workspace("blocking", false), "block", "alert"),
            provider("local", "vllm", &format!("{base}/v1"), &["chat-mock"]),
            provider("claude", "anthropic", &base, &["claude-mock"]),
        ],
        options,
    )
    .await
    .unwrap();
    (mock, gw)
}

async fn setup() -> (MockUpstream, Gateway) {
    setup_with(GatewayOptions::default()).await
}

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}})
}

/// A first turn asking for a tool call.
fn tool_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "instructions": "You are terse.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "call tool get_weather for Paris"}]}],
        "tools": [weather_tool()],
        "max_output_tokens": 300
    })
}

async fn post(gw: &Gateway, body: &Value) -> Answer {
    gw.post("/v1/responses", body).await.unwrap()
}

async fn post_in(gw: &Gateway, body: &Value, ws: &str) -> Answer {
    gw.post_with("/v1/responses", body, &[("x-switchyard-workspace", ws)])
        .await
        .unwrap()
}

fn function_call(response: &Value) -> &Value {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("no function_call item: {response}"))
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter())
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// The events of a Responses stream, checked to be numbered in order and to end once.
fn events(a: &Answer) -> Vec<(String, Value)> {
    let events = a.sse_events().unwrap();
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(&data["type"], name, "{data}");
        assert_eq!(data["sequence_number"], json!(i), "{data}");
    }
    let ends: Vec<_> = events
        .iter()
        .filter(|(n, _)| {
            matches!(
                n.as_str(),
                "response.completed" | "response.incomplete" | "response.failed"
            )
        })
        .collect();
    assert_eq!(ends.len(), 1, "one end: {}", a.text);
    assert_eq!(
        events.last().map(|(n, _)| n.as_str()),
        Some(ends[0].0.as_str())
    );
    events
}

fn completed(events: &[(String, Value)]) -> Value {
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "response.completed", "{data}");
    data["response"].clone()
}

fn assert_record(r: &Interception, stream: bool, tool: Option<&str>) {
    assert_eq!(r.endpoint, "/v1/responses");
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.status, 200);
    assert_eq!(r.stream, stream);
    assert!(r.usage.input_tokens > 0, "{:?}", r.usage);
    assert!(r.usage.output_tokens > 0, "{:?}", r.usage);
    assert!(!r.usage_estimated);
    match tool {
        Some(name) => {
            assert_eq!(r.tool_usages.len(), 1, "{:?}", r.tool_usages);
            assert_eq!(r.tool_usages[0].name, name);
        }
        None => assert!(r.tool_usages.is_empty(), "{:?}", r.tool_usages),
    }
}

#[tokio::test]
async fn a_chat_target_answers_a_tool_call_and_its_output_through_the_store() {
    let (mock, gw) = setup().await;
    let a = post(&gw, &tool_request("chat-mock", false)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let first = a.json().unwrap();
    assert_eq!(first["object"], "response");
    assert_eq!(first["status"], "completed");
    let id = first["id"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("resp_") && id.len() == 37,
        "resp_ + uuid: {id}"
    );
    let call = function_call(&first).clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
        json!({"q": "call tool get_weather for Paris"})
    );
    let got = mock.requests();
    assert_eq!(got[0].path, "/v1/chat/completions");
    let sent = &got[0].body;
    assert_eq!(sent["model"], "chat-mock");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Answer in English.\n\nYou are terse."}),
        "custom instructions before the request's: {sent}"
    );
    assert_eq!(sent["messages"][1]["role"], "user");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["max_tokens"], 300);
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_record(&r, false, Some("get_weather"));
    assert_eq!(r.tool_usages[0].id, call["call_id"].as_str().unwrap());
    assert_eq!(
        r.user_prompt.as_deref(),
        Some("call tool get_weather for Paris")
    );

    // The follow-up names the first response and sends only the tool's output.
    let follow = json!({
        "model": "chat-mock",
        "previous_response_id": id,
        "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}],
        "tools": [weather_tool()]
    });
    let b = post(&gw, &follow).await;
    assert_eq!(b.status, 200, "{}", b.text);
    let second = b.json().unwrap();
    assert_eq!(second["previous_response_id"], json!(id));
    assert!(output_text(&second).starts_with("mock reply"), "{second}");
    let sent = &mock.requests()[1].body;
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    // Instructions are not carried over (OpenAI's semantics); custom ones are added again.
    assert_eq!(roles, ["system", "user", "assistant", "tool"], "{sent}");
    assert_eq!(sent["messages"][0]["content"], "Answer in English.");
    assert_eq!(sent["messages"][2]["tool_calls"][0]["id"], call["call_id"]);
    assert_eq!(sent["messages"][3]["tool_call_id"], call["call_id"]);
    assert_eq!(sent["messages"][3]["content"], "sunny");
    assert_record(&gw.record_of(&b.request_id()).await.unwrap(), false, None);

    // GET and DELETE from the store.
    let g = gw.get(&format!("/v1/responses/{id}"), &[]).await.unwrap();
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.json().unwrap(), first);
    let d = gw
        .http_client()
        .delete(gw.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 200);
    let d: Value = d.json().await.unwrap();
    assert_eq!(
        d,
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    let g = gw.get(&format!("/v1/responses/{id}"), &[]).await.unwrap();
    assert_eq!(g.status, 404, "{}", g.text);
    assert_eq!(g.json().unwrap()["error"]["code"], "response_not_found");
    let again = post(&gw, &follow).await;
    assert_eq!(again.status, 404, "deleted: {}", again.text);
    assert_eq!(mock.requests().len(), 2, "nothing sent for an unknown id");
}

#[tokio::test]
async fn a_chat_target_streams_a_tool_call_and_the_stream_is_stored() {
    let (mock, gw) = setup().await;
    let a = post(&gw, &tool_request("chat-mock", true)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("content-type"), Some("text/event-stream"));
    let ev = events(&a);
    assert_eq!(ev[0].0, "response.created");
    assert!(
        ev.iter()
            .any(|(n, d)| n == "response.output_item.added" && d["item"]["type"] == "function_call")
    );
    assert!(
        ev.iter()
            .any(|(n, _)| n == "response.function_call_arguments.done")
    );
    let response = completed(&ev);
    assert!(response["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let call = function_call(&response).clone();
    assert_eq!(mock.requests()[0].body["stream"], true);
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_record(&r, true, Some("get_weather"));
    assert_eq!(r.usage.input_tokens, response["usage"]["input_tokens"]);

    // The streamed response was kept: it can be continued, streamed again.
    let follow = json!({
        "model": "chat-mock",
        "stream": true,
        "previous_response_id": response["id"],
        "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]
    });
    let b = post(&gw, &follow).await;
    assert_eq!(b.status, 200, "{}", b.text);
    let second = completed(&events(&b));
    assert!(output_text(&second).starts_with("mock reply"), "{second}");
    let sent = &mock.requests()[1].body;
    assert_eq!(sent["messages"].as_array().unwrap().len(), 4, "{sent}");
    assert_record(&gw.record_of(&b.request_id()).await.unwrap(), true, None);
}

#[tokio::test]
async fn an_anthropic_target_answers_and_streams_with_the_history_sent_whole() {
    let (mock, gw) = setup().await;
    let a = post(&gw, &tool_request("claude-mock", false)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let first = a.json().unwrap();
    let call = function_call(&first).clone();
    assert_eq!(call["name"], "get_weather");
    let got = mock.requests();
    assert_eq!(got[0].path, "/v1/messages");
    assert_eq!(
        got[0].body["system"],
        "Answer in English.\n\nYou are terse."
    );
    assert_eq!(got[0].body["tools"][0]["name"], "get_weather");
    assert_eq!(got[0].body["max_tokens"], 300);
    assert_record(
        &gw.record_of(&a.request_id()).await.unwrap(),
        false,
        Some("get_weather"),
    );

    // As Codex CLI does: `store: false` and the whole history every turn.
    let mut history = tool_request("claude-mock", true)["input"].clone();
    let items = history.as_array_mut().unwrap();
    items.extend(first["output"].as_array().unwrap().iter().cloned());
    items.push(
        json!({"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}),
    );
    let follow = json!({
        "model": "claude-mock",
        "stream": true,
        "store": false,
        "instructions": "You are terse.",
        "input": history,
        "tools": [weather_tool()]
    });
    let b = post(&gw, &follow).await;
    assert_eq!(b.status, 200, "{}", b.text);
    let second = completed(&events(&b));
    assert_eq!(second["store"], false);
    assert!(output_text(&second).starts_with("mock reply"), "{second}");
    let sent = &mock.requests()[1].body;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{sent}");
    assert!(
        messages[1]["content"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["type"] == "tool_use" && b["id"] == call["call_id"]),
        "{sent}"
    );
    let result = &messages[2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], call["call_id"]);
    assert_record(&gw.record_of(&b.request_id()).await.unwrap(), true, None);
    // Not stored.
    let g = gw
        .get(
            &format!("/v1/responses/{}", second["id"].as_str().unwrap()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(g.status, 404);
}

#[tokio::test]
async fn refusals_are_openai_errors_and_nothing_is_sent() {
    let (mock, gw) = setup().await;
    // A built-in tool cannot run on a chat target.
    let mut req = tool_request("chat-mock", false);
    req["tools"] = json!([weather_tool(), {"type": "web_search"}]);
    let a = post(&gw, &req).await;
    assert_eq!(a.status, 400, "{}", a.text);
    let e = a.json().unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("web_search"),
        "{e}"
    );
    assert_eq!(e["error"]["param"], "tools[1]");
    // Malformed input.
    let a = post(&gw, &json!({"model": "chat-mock", "input": 5})).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json().unwrap()["error"]["param"], "input");
    let a = post(
        &gw,
        &json!({"model": "chat-mock", "input": [{"type": "bogus_item"}]}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json().unwrap()["error"]["param"], "input[0].type");
    // An unknown previous response.
    let a = post(
        &gw,
        &json!({"model": "chat-mock", "input": "hi", "previous_response_id": "resp_nope"}),
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.text);
    let e = a.json().unwrap();
    assert_eq!(e["error"]["code"], "previous_response_not_found");
    assert_eq!(e["error"]["param"], "previous_response_id");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resp_nope")
    );
    // The guardrails read `input`.
    let a = post_in(
        &gw,
        &json!({"model": "chat-mock", "input": format!("deploy with token {TOKEN}")}),
        "blocking",
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json().unwrap()["error"]["code"], "guardrail_blocked");
    assert!(mock.requests().is_empty());
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!(r.endpoint, "/v1/responses");
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn a_response_of_another_workspace_is_not_found() {
    let (mock, gw) = setup().await;
    let a = post(&gw, &json!({"model": "chat-mock", "input": "hello there"})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.json().unwrap()["id"].as_str().unwrap().to_owned();
    let follow = json!({"model": "chat-mock", "input": "and then", "previous_response_id": id});
    let b = post_in(&gw, &follow, "other").await;
    assert_eq!(b.status, 404, "{}", b.text);
    assert_eq!(
        b.json().unwrap()["error"]["code"],
        "previous_response_not_found"
    );
    let g = gw
        .get(
            &format!("/v1/responses/{id}"),
            &[("x-switchyard-workspace", "other")],
        )
        .await
        .unwrap();
    assert_eq!(g.status, 404);
    let c = post_in(&gw, &follow, "default").await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn the_store_is_bounded_and_evicts_the_oldest() {
    let (_mock, gw) = setup_with(GatewayOptions {
        response_store_entries: Some(2),
        ..Default::default()
    })
    .await;
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        let a = post(&gw, &json!({"model": "chat-mock", "input": text})).await;
        assert_eq!(a.status, 200, "{}", a.text);
        ids.push(a.json().unwrap()["id"].as_str().unwrap().to_owned());
    }
    let mut status = Vec::new();
    for id in &ids {
        status.push(
            gw.get(&format!("/v1/responses/{id}"), &[])
                .await
                .unwrap()
                .status,
        );
    }
    assert_eq!(status, [404, 200, 200], "the oldest evicted");
    let a = post(
        &gw,
        &json!({"model": "chat-mock", "input": "x", "previous_response_id": ids[0]}),
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.text);
}

#[tokio::test]
async fn a_websocket_attempt_is_told_to_use_http() {
    let (_mock, gw) = setup().await;
    let a = gw
        .get(
            "/v1/responses",
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 426, "{}", a.text);
    assert_eq!(a.json().unwrap()["error"]["type"], "invalid_request_error");
    let b = gw.get("/v1/responses", &[]).await.unwrap();
    assert_eq!(b.status, 405);
    assert_eq!(b.header("allow"), Some("POST"));
}

// ---------------------------------------------------------------- native passthrough

/// What the recorded OpenAI Responses server received.
type Received = Arc<Mutex<Vec<Value>>>;

/// A recorded non-streamed answer of OpenAI's Responses API, with a built-in tool's item.
fn native_answer() -> Value {
    json!({
        "id": "resp_native_1", "object": "response", "created_at": 1_700_000_000,
        "status": "completed", "error": null, "incomplete_details": null,
        "model": "gpt-5-2025-08-07",
        "output": [
            {"id": "ws_1", "type": "web_search_call", "status": "completed",
             "action": {"type": "search", "query": "weather Paris"}},
            {"id": "fc_1", "type": "function_call", "status": "completed",
             "call_id": "call_native_1", "name": "get_weather", "arguments": "{\"q\":\"Paris\"}"}
        ],
        "usage": {"input_tokens": 21, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 30}
    })
}

/// A recorded Responses stream (event shapes of openai-python `response_stream_event.py`).
fn native_stream() -> String {
    let response = |status: &str, usage: Value, output: Value| {
        json!({"id": "resp_native_2", "object": "response", "created_at": 1_700_000_000,
               "status": status, "model": "gpt-5-2025-08-07", "output": output, "usage": usage})
    };
    let item = json!({"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": "Hello there", "annotations": []}]});
    let events = [
        (
            "response.created",
            json!({"response": response("in_progress", Value::Null, json!([]))}),
        ),
        (
            "response.output_item.added",
            json!({"output_index": 0, "item": {"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}}),
        ),
        (
            "response.output_text.delta",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Hello there"}),
        ),
        (
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        ),
        (
            "response.completed",
            json!({"response": response("completed",
                json!({"input_tokens": 11, "output_tokens": 2, "total_tokens": 13}), json!([item]))}),
        ),
    ];
    events
        .iter()
        .enumerate()
        .map(|(i, (name, data))| {
            let mut data = data.clone();
            data["type"] = json!(name);
            data["sequence_number"] = json!(i);
            format!("event: {name}\ndata: {data}\n\n")
        })
        .collect()
}

async fn native_responses(State(received): State<Received>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap();
    let stream = body["stream"] == true;
    received.lock().unwrap().push(body);
    if stream {
        (
            [(header::CONTENT_TYPE, "text/event-stream")],
            native_stream(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            native_answer().to_string(),
        )
            .into_response()
    }
}

async fn native_server() -> (String, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/responses", routing::post(native_responses))
        .route(
            "/v1/responses/{id}",
            routing::delete(
                |State(received): State<Received>, Path(id): Path<String>| async move {
                    received.lock().unwrap().push(json!({"deleted": id}));
                    axum::Json(json!({"id": id, "object": "response.deleted", "deleted": true}))
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1"), received)
}

#[tokio::test]
async fn an_openai_provider_gets_the_responses_api_natively() {
    let (base, received) = native_server().await;
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        provider("openai", "openai", &base, &["gpt-5"]),
    ])
    .await
    .unwrap();
    let mut req = tool_request("gpt-5", false);
    req["tools"] = json!([weather_tool(), {"type": "web_search"}]);
    req["include"] = json!(["reasoning.encrypted_content"]);
    let a = post(&gw, &req).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json().unwrap(), native_answer(), "relayed as it came");
    {
        let got = received.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0], req, "the request as it came, built-in tools too");
    }
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_record(&r, false, Some("get_weather"));
    assert_eq!(r.usage.input_tokens, 21);
    assert_eq!(r.usage.output_tokens, 9);
    assert_eq!(r.tool_usages[0].id, "call_native_1");

    // OpenAI keeps its own state: the id is passed on to the provider that produced it.
    let follow = json!({
        "model": "gpt-5",
        "previous_response_id": "resp_native_1",
        "input": [{"type": "function_call_output", "call_id": "call_native_1", "output": "sunny"}],
        "stream": true
    });
    let b = post(&gw, &follow).await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(b.text, native_stream(), "the stream relayed as it came");
    {
        let got = received.lock().unwrap();
        assert_eq!(got[1]["previous_response_id"], "resp_native_1");
        assert_eq!(got[1]["input"].as_array().unwrap().len(), 1, "not expanded");
    }
    let r = gw.record_of(&b.request_id()).await.unwrap();
    assert_record(&r, true, None);
    assert_eq!(r.usage.input_tokens, 11);
    assert_eq!(r.usage.output_tokens, 2);
    // Both native responses are known to the store under OpenAI's ids.
    let g = gw.get("/v1/responses/resp_native_2", &[]).await.unwrap();
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(output_text(&g.json().unwrap()), "Hello there");
    let g = gw.get("/v1/responses/resp_native_1", &[]).await.unwrap();
    assert_eq!(g.json().unwrap(), native_answer());
    // Deleting a native response deletes it at OpenAI too.
    let d = gw
        .http_client()
        .delete(gw.url("/v1/responses/resp_native_1"))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 200);
    assert_eq!(
        received.lock().unwrap().last(),
        Some(&json!({"deleted": "resp_native_1"}))
    );
    let g = gw.get("/v1/responses/resp_native_1", &[]).await.unwrap();
    assert_eq!(g.status, 404);
}

#[tokio::test]
async fn a_stream_cut_after_it_started_ends_with_response_failed() {
    let (mock, gw) = setup().await;
    mock.script(ScriptRule::new(Behavior {
        chunks: Some(10),
        cut_after_chunks: Some(3),
        ..Default::default()
    }));
    let a = post(
        &gw,
        &json!({"model": "chat-mock", "stream": true, "input": "tell me a story"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let ev = events(&a);
    assert!(
        ev.iter().any(|(n, _)| n == "response.output_text.delta"),
        "the answer had started: {}",
        a.text
    );
    let (name, data) = ev.last().unwrap();
    assert_eq!(name, "response.failed", "{data}");
    assert_eq!(data["response"]["status"], "failed");
    assert_eq!(data["response"]["error"]["code"], "server_error");
    let id = data["response"]["id"].as_str().unwrap();
    let g = gw.get(&format!("/v1/responses/{id}"), &[]).await.unwrap();
    assert_eq!(g.status, 404, "a failed response is not stored");
    let r = gw.record_of(&a.request_id()).await.unwrap();
    assert_eq!(r.endpoint, "/v1/responses");
    assert_ne!(r.outcome, Outcome::Success, "{r:?}");
}

#[tokio::test]
async fn a_built_in_tool_falls_back_to_a_native_target_of_the_route() {
    let mock = mock().await;
    let (native, received) = native_server().await;
    let gw = Gateway::start_objects(&[
        workspace("default", true),
        provider("local", "vllm", &format!("{}/v1", mock.base_url()), &[]),
        provider("openai", "openai", &native, &[]),
        router_policy(
            "ask",
            10,
            json!({"model": "ask"}),
            to_provider("local", Some("chat-mock")),
            vec![to_provider("openai", Some("gpt-5"))],
        ),
    ])
    .await
    .unwrap();
    let mut req = tool_request("ask", false);
    req["tools"] = json!([{"type": "web_search"}]);
    let a = post(&gw, &req).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json().unwrap()["id"], "resp_native_1");
    assert!(
        mock.requests().is_empty(),
        "the chat target is never called"
    );
    let got = received.lock().unwrap().clone();
    assert_eq!(got[0]["model"], "gpt-5");
    assert_eq!(got[0]["tools"], req["tools"]);
    // A plain request stays on the first target.
    let b = post(&gw, &json!({"model": "ask", "input": "hello"})).await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(mock.requests().len(), 1);
}
