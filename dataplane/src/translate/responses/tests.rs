//! Tests of the Responses ⇄ chat translation, and of its composition with the chat ⇄
//! Anthropic translation (an Anthropic target behind a Responses client).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::sse::SseEvent;
use crate::translate::tests::{err_param, run};
use crate::translate::{
    AnthropicToOpenAiStream, TranslateError, anthropic_response_to_openai, openai_chat_to_anthropic,
};
use crate::usage::Usage;

// ---------------------------------------------------------------------------------------------
// Request

#[test]
fn full_request_translates() {
    let req = json!({
        "model": "gpt-5",
        "instructions": "You are terse.",
        "input": [
            {"role": "developer", "content": "Answer in French."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is in this image?"},
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
                {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": [
                {"type": "summary_text", "text": "Look at it."},
                {"type": "summary_text", "text": "Call the tool."},
            ]},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Let me check.", "annotations": [], "logprobs": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "lookup",
             "arguments": "{\"q\":\"cat\"}"},
            {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "lookup",
             "arguments": "{\"q\":\"dog\"}"},
            {"type": "function_call_output", "call_id": "call_a", "output": "a cat"},
            {"type": "function_call_output", "call_id": "call_b", "output": [
                {"type": "input_text", "text": "a dog"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            ]},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [{"type": "function", "name": "lookup", "description": "Look up",
                   "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                   "strict": true}],
        "tool_choice": {"type": "function", "name": "lookup"},
        "parallel_tool_calls": false,
        "max_output_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "answer", "strict": true,
                            "description": "The answer",
                            "schema": {"type": "object", "properties": {}}},
                 "verbosity": "low"},
        "stream": true,
        "store": false,
        "metadata": {"k": "v"},
        "include": ["reasoning.encrypted_content"],
        "truncation": "disabled",
        "service_tier": "auto",
        "prompt_cache_key": "pk",
    });
    let chat = responses_to_chat(&req, "qwen3").unwrap();
    assert_eq!(
        chat,
        json!({
            "model": "qwen3",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
                ]},
                {"role": "assistant", "content": "Let me check.",
                 "reasoning_content": "Look at it.\n\nCall the tool.",
                 "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"dog\"}"}},
                 ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "a cat"},
                {"role": "tool", "tool_call_id": "call_b", "content": [
                    {"type": "text", "text": "a dog"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ]},
                {"role": "user", "content": "Thanks"},
            ],
            "tools": [{"type": "function", "function": {
                "name": "lookup", "description": "Look up",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "lookup"}},
            "parallel_tool_calls": false,
            "max_tokens": 256,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u-1",
            "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": {"type": "object", "properties": {}},
                "description": "The answer", "strict": true}},
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
}

#[test]
fn string_input_and_small_options() {
    let chat = responses_to_chat(&json!({"input": "Hi"}), "m").unwrap();
    assert_eq!(
        chat,
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})
    );
    // `parallel_tool_calls` needs tools; `safety_identifier` stands in for `user`; `text` and
    // `stream: false` send nothing; empty instructions are no message.
    let chat = responses_to_chat(
        &json!({"input": "Hi", "instructions": "", "parallel_tool_calls": true,
                "safety_identifier": "s-1", "text": {"format": {"type": "text"}},
                "stream": false, "tools": [], "truncation": "auto", "background": false}),
        "m",
    )
    .unwrap();
    assert_eq!(
        chat,
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "user": "s-1"})
    );
    let chat = responses_to_chat(
        &json!({"input": "Hi", "text": {"format": {"type": "json_object"}}, "tool_choice": "required"}),
        "m",
    )
    .unwrap();
    assert_eq!(chat["response_format"], json!({"type": "json_object"}));
    assert_eq!(chat["tool_choice"], json!("required"));
}

#[test]
fn function_calls_without_an_assistant_message_make_one() {
    let chat = responses_to_chat(
        &json!({"input": [
            {"role": "user", "content": "go"},
            {"type": "reasoning", "id": "rs", "summary": [], "content": [
                {"type": "reasoning_text", "text": "full "}, {"type": "text", "text": "text"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
            // A reasoning item at the end has no assistant message to go to.
            {"type": "reasoning", "id": "rs2", "summary": [{"type": "summary_text", "text": "x"}]},
        ]}),
        "m",
    )
    .unwrap();
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": null, "reasoning_content": "full text", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        ])
    );
}

#[test]
fn text_after_calls_joins_their_message_and_stray_reasoning_is_dropped() {
    let chat = responses_to_chat(
        &json!({"input": [
            {"type": "reasoning", "id": "rs0", "summary": [{"type": "summary_text", "text": "stray"}]},
            {"role": "user", "content": "go"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"role": "assistant", "content": "Running f."},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            {"type": "reasoning", "id": "rs1", "summary": [{"type": "summary_text", "text": "stray too"}]},
            {"type": "function_call_output", "call_id": "c2", "output": "late"},
            {"role": "assistant", "content": "Done."},
        ]}),
        "m",
    )
    .unwrap();
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "Running f.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "tool", "tool_call_id": "c2", "content": "late"},
            {"role": "assistant", "content": "Done."},
        ])
    );
}

#[test]
fn assistant_refusal_and_system_parts() {
    let chat = responses_to_chat(
        &json!({"input": [
            {"role": "system", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        ]}),
        "m",
    )
    .unwrap();
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "system", "content": "a\n\nb"},
            {"role": "assistant", "content": null, "refusal": "No."},
        ])
    );
}

#[test]
fn refused_features_are_unsupported() {
    let base = json!({"input": "Hi"});
    let with = |key: &str, v: Value| {
        let mut r = base.clone();
        r[key] = v;
        r
    };
    let item = |it: Value| json!({"input": [it]});
    let cases = [
        (
            with("tools", json!([{"type": "web_search"}])),
            "tools[0] (web_search)",
        ),
        (
            with(
                "tools",
                json!([{"type": "function", "name": "f"}, {"type": "web_search_preview"}]),
            ),
            "tools[1] (web_search_preview)",
        ),
        (
            with(
                "tools",
                json!([{"type": "file_search", "vector_store_ids": []}]),
            ),
            "tools[0] (file_search)",
        ),
        (
            with("tools", json!([{"type": "code_interpreter"}])),
            "tools[0] (code_interpreter)",
        ),
        (
            with("tools", json!([{"type": "computer_use_preview"}])),
            "tools[0] (computer_use_preview)",
        ),
        (
            with("tools", json!([{"type": "image_generation"}])),
            "tools[0] (image_generation)",
        ),
        (
            with("tools", json!([{"type": "mcp", "server_label": "x"}])),
            "tools[0] (mcp)",
        ),
        (
            with("tools", json!([{"type": "local_shell"}])),
            "tools[0] (local_shell)",
        ),
        (
            with("tools", json!([{"type": "custom", "name": "x"}])),
            "tools[0] (custom)",
        ),
        (
            with("tool_choice", json!({"type": "web_search_preview"})),
            "tool_choice (web_search_preview)",
        ),
        (
            with("tool_choice", json!({"type": "file_search"})),
            "tool_choice (file_search)",
        ),
        (
            with("tool_choice", json!({"type": "mcp", "server_label": "x"})),
            "tool_choice (mcp)",
        ),
        (
            with(
                "tool_choice",
                json!({"type": "allowed_tools", "mode": "auto", "tools": []}),
            ),
            "tool_choice (allowed_tools)",
        ),
        (with("background", json!(true)), "background"),
        (with("prompt", json!({"id": "pmpt_1"})), "prompt"),
        (with("max_tool_calls", json!(3)), "max_tool_calls"),
        (with("top_logprobs", json!(2)), "top_logprobs"),
        (
            item(
                json!({"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}),
            ),
            "input[0].content[0].file_id",
        ),
        (
            item(json!({"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]})),
            "input[0].content[0].file_id",
        ),
        (
            item(
                json!({"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}),
            ),
            "input[0].content[0].file_url",
        ),
        (
            item(json!({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]})),
            "input[0].content[0].type",
        ),
        (
            item(json!({"type": "web_search_call", "id": "ws", "status": "completed"})),
            "input[0].type",
        ),
        (
            item(json!({"type": "computer_call_output", "call_id": "c"})),
            "input[0].type",
        ),
        (
            item(json!({"type": "local_shell_call", "call_id": "c"})),
            "input[0].type",
        ),
        (
            item(json!({"type": "mcp_call", "id": "m"})),
            "input[0].type",
        ),
    ];
    for (req, param) in cases {
        match responses_to_chat(&req, "m") {
            Err(TranslateError::Unsupported(p)) => assert_eq!(p, param, "{req}"),
            other => panic!("expected Unsupported({param}) for {req}, got {other:?}"),
        }
    }
}

#[test]
fn malformed_requests_name_the_param() {
    let with = |key: &str, v: Value| {
        let mut r = json!({"input": "Hi"});
        r[key] = v;
        r
    };
    let items = |its: Value| json!({ "input": its });
    let cases = [
        (json!([]), ""),
        (json!({}), "input"),
        (json!({"input": 3}), "input"),
        (
            with("previous_response_id", json!("resp_1")),
            "previous_response_id",
        ),
        (with("conversation", json!("conv_1")), "conversation"),
        (with("instructions", json!(["x"])), "instructions"),
        (with("tools", json!({})), "tools"),
        (with("tools", json!(["f"])), "tools[0]"),
        (with("tools", json!([{"name": "f"}])), "tools[0].type"),
        (
            with("tools", json!([{"type": "function"}])),
            "tools[0].name",
        ),
        (
            with("tools", json!([{"type": "function", "name": ""}])),
            "tools[0].name",
        ),
        (
            with(
                "tools",
                json!([{"type": "function", "name": "f", "parameters": "x"}]),
            ),
            "tools[0].parameters",
        ),
        (
            with(
                "tools",
                json!([{"type": "function", "name": "f", "strict": "yes"}]),
            ),
            "tools[0].strict",
        ),
        (
            with(
                "tools",
                json!([{"type": "function", "name": "f", "description": 1}]),
            ),
            "tools[0].description",
        ),
        (
            with("tools", json!([{"type": "teleport"}])),
            "tools[0].type",
        ),
        (with("tool_choice", json!("sometimes")), "tool_choice"),
        (with("tool_choice", json!(1)), "tool_choice"),
        (
            with("tool_choice", json!({"type": "function"})),
            "tool_choice.name",
        ),
        (
            with("tool_choice", json!({"type": "nope"})),
            "tool_choice.type",
        ),
        (
            with("parallel_tool_calls", json!("no")),
            "parallel_tool_calls",
        ),
        (with("max_output_tokens", json!(0)), "max_output_tokens"),
        (with("max_output_tokens", json!("10")), "max_output_tokens"),
        (with("temperature", json!("hot")), "temperature"),
        (with("top_p", json!([])), "top_p"),
        (with("user", json!(1)), "user"),
        (with("safety_identifier", json!(1)), "safety_identifier"),
        (with("reasoning", json!("high")), "reasoning"),
        (with("reasoning", json!({"effort": 1})), "reasoning.effort"),
        (
            with("reasoning", json!({"summary": 1})),
            "reasoning.summary",
        ),
        (with("text", json!("json")), "text"),
        (with("text", json!({"format": "json"})), "text.format"),
        (
            with("text", json!({"format": {"type": "yaml"}})),
            "text.format.type",
        ),
        (
            with(
                "text",
                json!({"format": {"type": "json_schema", "schema": {}}}),
            ),
            "text.format.name",
        ),
        (
            with(
                "text",
                json!({"format": {"type": "json_schema", "name": "a"}}),
            ),
            "text.format.schema",
        ),
        (
            with(
                "text",
                json!({"format": {"type": "json_schema", "name": "a", "schema": {}, "strict": 1}}),
            ),
            "text.format.strict",
        ),
        (with("text", json!({"verbosity": 2})), "text.verbosity"),
        (with("stream", json!("yes")), "stream"),
        (with("metadata", json!([])), "metadata"),
        (with("store", json!("no")), "store"),
        (with("include", json!("x")), "include"),
        (with("include", json!([1])), "include[0]"),
        (with("truncation", json!("sometimes")), "truncation"),
        (with("background", json!("no")), "background"),
        (items(json!(["hi"])), "input[0]"),
        (items(json!([{"type": 1}])), "input[0].type"),
        (
            items(json!([{"role": "user", "content": "a"}, {"type": "teleport"}])),
            "input[1].type",
        ),
        (
            items(json!([{"type": "item_reference", "id": "msg_1"}])),
            "input[0]",
        ),
        (items(json!([{"content": "x"}])), "input[0].role"),
        (
            items(json!([{"role": "tool", "content": "x"}])),
            "input[0].role",
        ),
        (items(json!([{"role": "user"}])), "input[0].content"),
        (
            items(json!([{"role": "user", "content": 1}])),
            "input[0].content",
        ),
        (
            items(json!([{"role": "user", "content": ["x"]}])),
            "input[0].content[0]",
        ),
        (
            items(json!([{"role": "user", "content": [{"type": "input_text"}]}])),
            "input[0].content[0].text",
        ),
        (
            items(json!([{"role": "user", "content": [{"type": "input_video"}]}])),
            "input[0].content[0].type",
        ),
        (
            items(json!([{"role": "user", "content": [{"type": "input_image"}]}])),
            "input[0].content[0].image_url",
        ),
        (
            items(
                json!([{"role": "user", "content": [{"type": "input_image", "image_url": "u", "detail": 1}]}]),
            ),
            "input[0].content[0].detail",
        ),
        (
            items(json!([{"role": "user", "content": [{"type": "input_file"}]}])),
            "input[0].content[0].file_data",
        ),
        (
            items(json!([{"role": "user", "content": [{"type": "refusal", "refusal": "x"}]}])),
            "input[0].content[0].type",
        ),
        (
            items(
                json!([{"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]),
            ),
            "input[0].content[0].type",
        ),
        (
            items(json!([{"role": "assistant", "content": [{"type": "refusal"}]}])),
            "input[0].content[0].refusal",
        ),
        (
            items(json!([{"type": "function_call", "name": "f", "arguments": "{}"}])),
            "input[0].call_id",
        ),
        (
            items(json!([{"type": "function_call", "call_id": "c", "arguments": "{}"}])),
            "input[0].name",
        ),
        (
            items(json!([{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}])),
            "input[0].arguments",
        ),
        (
            items(json!([{"type": "function_call_output", "output": "x"}])),
            "input[0].call_id",
        ),
        (
            items(json!([{"type": "function_call_output", "call_id": "c"}])),
            "input[0].output",
        ),
        (
            items(json!([{"type": "function_call_output", "call_id": "c", "output": 1}])),
            "input[0].output",
        ),
        (
            items(
                json!([{"type": "function_call_output", "call_id": "c", "output": [{"type": "x"}]}]),
            ),
            "input[0].output[0].type",
        ),
        (
            items(json!([{"type": "reasoning", "summary": "x"}])),
            "input[0].summary",
        ),
        (
            items(json!([{"type": "reasoning", "summary": [{"type": "text", "text": "x"}]}])),
            "input[0].summary[0].type",
        ),
        (
            items(json!([{"type": "reasoning", "summary": [{"type": "summary_text"}]}])),
            "input[0].summary[0].text",
        ),
        (
            items(json!([{"type": "reasoning", "summary": [], "encrypted_content": 1}])),
            "input[0].encrypted_content",
        ),
        (
            items(json!([{"type": "reasoning", "summary": [],
                          "encrypted_content": format!("{THINKING_BLOCKS_PREFIX}{{oops")}])),
            "input[0].encrypted_content",
        ),
    ];
    for (req, param) in cases {
        let (p, message) = err_param(responses_to_chat(&req, "m"));
        assert_eq!(p, param, "{req}: {message}");
        assert!(!message.is_empty());
    }
    // The message of a stored-state refusal says what to do.
    let (_, message) = err_param(responses_to_chat(
        &json!({"input": "x", "previous_response_id": "resp_1"}),
        "m",
    ));
    assert!(message.contains("expanded into `input`"), "{message}");
}

#[test]
fn openai_encrypted_reasoning_is_dropped() {
    let chat = responses_to_chat(
        &json!({"input": [
            {"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": "gAAAAB..."},
            {"role": "assistant", "content": "hi"},
        ]}),
        "m",
    )
    .unwrap();
    assert_eq!(
        chat["messages"],
        json!([{"role": "assistant", "content": "hi"}])
    );
}

// ---------------------------------------------------------------------------------------------
// Response

fn chat_answer(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_741_569_952,
        "model": "qwen3-32b",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160,
                  "prompt_tokens_details": {"cached_tokens": 100},
                  "completion_tokens_details": {"reasoning_tokens": 12}},
    })
}

#[test]
fn text_answer_becomes_a_response() {
    let req = json!({"model": "qwen3", "input": "Hi", "instructions": "Be brief.", "metadata": {"a": "b"}});
    let chat = chat_answer(
        json!({"role": "assistant", "content": "Hello!", "refusal": null}),
        "stop",
    );
    let mut resp = chat_response_to_responses(&chat, &req, "resp_abc");
    assert!(resp["completed_at"].as_i64().unwrap() >= 1_741_569_952);
    resp["completed_at"] = json!(0);
    assert_eq!(
        resp,
        json!({
            "id": "resp_abc",
            "object": "response",
            "created_at": 1_741_569_952,
            "status": "completed",
            "background": false,
            "completed_at": 0,
            "error": null,
            "incomplete_details": null,
            "instructions": "Be brief.",
            "max_output_tokens": null,
            "max_tool_calls": null,
            "metadata": {"a": "b"},
            "model": "qwen3-32b",
            "output": [{
                "id": "msg_abc_0", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
            }],
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "prompt_cache_key": null,
            "reasoning": {"effort": null, "summary": null},
            "safety_identifier": null,
            "service_tier": "default",
            "store": true,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_logprobs": 0,
            "top_p": 1.0,
            "truncation": "disabled",
            "user": null,
            "usage": {
                "input_tokens": 120,
                "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
                "output_tokens": 40,
                "output_tokens_details": {"reasoning_tokens": 12},
                "total_tokens": 160,
            },
        })
    );
    // `output_text` is an SDK convenience, not a wire field.
    assert!(resp.get("output_text").is_none());
}

#[test]
fn reasoning_text_and_tool_calls_are_items_in_order() {
    let req = json!({
        "input": "weather?",
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        "tool_choice": "required", "parallel_tool_calls": false, "temperature": 0.5,
        "max_output_tokens": 100, "store": false, "reasoning": {"effort": "high"},
        "text": {"verbosity": "low"},
    });
    let chat = chat_answer(
        json!({"role": "assistant", "content": "Checking.", "reasoning_content": "Need tools.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
        ]}),
        "tool_calls",
    );
    let resp = chat_response_to_responses(&chat, &req, "resp_xyz");
    assert_eq!(
        resp["output"],
        json!([
            {"id": "rs_xyz_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Need tools."}]},
            {"id": "msg_xyz_1", "type": "message", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}]},
            {"id": "fc_xyz_2", "type": "function_call", "status": "completed", "call_id": "call_1",
             "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"id": "fc_xyz_3", "type": "function_call", "status": "completed", "call_id": "call_2",
             "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
        ])
    );
    assert_eq!(resp["status"], "completed");
    for (key, want) in [
        ("tools", req["tools"].clone()),
        ("tool_choice", json!("required")),
        ("parallel_tool_calls", json!(false)),
        ("temperature", json!(0.5)),
        ("max_output_tokens", json!(100)),
        ("store", json!(false)),
        ("reasoning", json!({"effort": "high", "summary": null})),
        (
            "text",
            json!({"format": {"type": "text"}, "verbosity": "low"}),
        ),
    ] {
        assert_eq!(resp[key], want, "{key}");
    }
    // Deterministic: the same input gives the same ids.
    assert_eq!(
        chat_response_to_responses(&chat, &req, "resp_xyz")["output"],
        resp["output"]
    );
}

#[test]
fn truncated_and_filtered_answers_are_incomplete() {
    for (finish, reason) in [
        ("length", "max_output_tokens"),
        ("content_filter", "content_filter"),
    ] {
        let chat = chat_answer(json!({"role": "assistant", "content": "Once upon"}), finish);
        let resp = chat_response_to_responses(&chat, &json!({}), "resp_1");
        assert_eq!(resp["status"], "incomplete");
        assert_eq!(resp["incomplete_details"], json!({"reason": reason}));
        assert_eq!(resp["output"][0]["status"], "incomplete");
    }
}

#[test]
fn refusal_and_error_bodies() {
    let chat = chat_answer(
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
        "stop",
    );
    let resp = chat_response_to_responses(&chat, &json!({}), "resp_1");
    assert_eq!(
        resp["output"][0]["content"],
        json!([{"type": "refusal", "refusal": "I can't help with that."}])
    );
    let err = json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}});
    assert_eq!(chat_response_to_responses(&err, &json!({}), "resp_1"), err);
}

// ---------------------------------------------------------------------------------------------
// Stream

/// Checks the invariants of a Responses event stream and returns the events as
/// `(type, data)`: names match `type`; `sequence_number` counts from 0; every item is added
/// once and done once at its `output_index`, with item events naming its id; content and
/// summary parts open and close in order; exactly one terminal event, the last.
pub(crate) fn check_responses_stream(events: &[SseEvent]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut items: BTreeMap<u64, (String, bool)> = BTreeMap::new();
    let mut open_part: Option<(u64, String)> = None;
    for (n, ev) in events.iter().enumerate() {
        let data: Value = serde_json::from_str(&ev.data).unwrap();
        let ty = data["type"].as_str().unwrap().to_owned();
        assert_eq!(ev.event.as_deref(), Some(ty.as_str()), "event name");
        assert_eq!(data["sequence_number"], json!(n), "sequence_number of {ty}");
        let terminal = matches!(
            ty.as_str(),
            "response.completed" | "response.incomplete" | "response.failed"
        );
        assert_eq!(
            terminal,
            n == events.len() - 1,
            "{ty} at {n} of {}",
            events.len()
        );
        if let Some(index) = data.get("output_index").and_then(Value::as_u64) {
            match ty.as_str() {
                "response.output_item.added" => {
                    assert_eq!(index, items.len() as u64, "items are added in order");
                    let id = data["item"]["id"].as_str().unwrap().to_owned();
                    assert!(items.values().all(|(i, _)| *i != id), "unique id {id}");
                    items.insert(index, (id, false));
                }
                "response.output_item.done" => {
                    let (id, done) = items.get_mut(&index).expect("done before added");
                    assert!(!*done, "item {index} done twice");
                    assert_eq!(data["item"]["id"], json!(id));
                    *done = true;
                }
                _ => {
                    let (id, done) = items.get(&index).expect("event before its item");
                    assert!(!*done, "{ty} after its item was done");
                    assert_eq!(data["item_id"], json!(id), "{ty} item_id");
                }
            }
        }
        if ty.ends_with("part.added") {
            assert!(open_part.is_none(), "{ty} while a part is open");
            open_part = Some((
                data["output_index"].as_u64().unwrap(),
                ty.replace("added", "done"),
            ));
        } else if ty.ends_with("part.done") {
            let (index, want) = open_part.take().expect("part done without added");
            assert_eq!(
                (index, ty.clone()),
                (data["output_index"].as_u64().unwrap(), want)
            );
        }
        out.push((ty, data));
    }
    if let Some((ty, _)) = out.last()
        && ty != "response.failed"
    {
        assert!(
            items.values().all(|(_, done)| *done),
            "an item was never done"
        );
        assert!(open_part.is_none());
    }
    out
}

fn chunk(delta: Value, finish: Option<&str>) -> SseEvent {
    SseEvent::data(
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "qwen3",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        .to_string(),
    )
}

fn usage_chunk() -> SseEvent {
    SseEvent::data(
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "qwen3",
               "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
               "prompt_tokens_details": {"cached_tokens": 4},
               "completion_tokens_details": {"reasoning_tokens": 2}}})
        .to_string(),
    )
}

fn feed(t: &mut ChatToResponsesStream, events: &[SseEvent]) -> Vec<SseEvent> {
    let mut out = Vec::new();
    for ev in events {
        out.extend(t.on_event(ev).unwrap());
    }
    out.extend(t.finish());
    out
}

fn types(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(t, _)| t.as_str()).collect()
}

#[test]
fn text_stream_has_the_documented_sequence() {
    let req = json!({"input": "Hi", "stream": true});
    let mut t = ChatToResponsesStream::new("resp_s1", "qwen3", &req);
    let out = feed(
        &mut t,
        &[
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Hel"}), None),
            chunk(json!({"content": "lo"}), None),
            chunk(json!({}), Some("stop")),
            usage_chunk(),
            SseEvent::data("[DONE]"),
        ],
    );
    let events = check_responses_stream(&out);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    assert_eq!(events[0].1["response"]["output"], json!([]));
    assert_eq!(events[0].1["response"]["usage"], Value::Null);
    assert_eq!(
        events[2].1["item"],
        json!({"id": "msg_s1_0", "type": "message", "status": "in_progress", "role": "assistant", "content": []})
    );
    assert_eq!(
        events[4].1,
        json!({"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_s1_0",
               "output_index": 0, "content_index": 0, "delta": "Hel", "logprobs": []})
    );
    assert_eq!(events[6].1["text"], "Hello");
    assert_eq!(
        events[8].1["item"]["content"],
        json!([{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}])
    );
    let done = &events[9].1["response"];
    assert_eq!(done["id"], "resp_s1");
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
               "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15})
    );
    assert_eq!(*done, t.response());
    assert!(t.saw_terminal());
    assert_eq!(
        t.usage(),
        Usage {
            input_tokens: 6,
            output_tokens: 5,
            cache_read_input_tokens: 4,
            cache_write_input_tokens: 0
        }
    );
    assert_eq!(t.finish_reason(), Some("stop"));
    // Nothing after the end.
    assert!(
        t.on_event(&chunk(json!({"content": "x"}), None))
            .unwrap()
            .is_empty()
    );
    assert!(t.finish().is_empty());
}

#[test]
fn reasoning_text_and_interleaved_tool_calls() {
    let mut t = ChatToResponsesStream::new("resp_s2", "", &json!({"input": "x"}));
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut c = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        if let Some(name) = name {
            c["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [c]}), None)
    };
    let out = feed(
        &mut t,
        &[
            chunk(
                json!({"role": "assistant", "reasoning_content": "Think"}),
                None,
            ),
            chunk(json!({"reasoning_content": "ing."}), None),
            chunk(json!({"content": "Calling."}), None),
            call(0, Some("call_a"), Some("f"), ""),
            call(0, None, None, "{\"a\":"),
            call(0, None, None, "1}"),
            call(1, Some("call_b"), Some("g"), "{}"),
            // Text after a tool call: a new message item.
            chunk(json!({"content": "Done."}), None),
            chunk(json!({}), Some("tool_calls")),
            usage_chunk(),
        ],
    );
    let events = check_responses_stream(&out);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[0].1["response"]["model"], "qwen3");
    assert_eq!(
        events[3].1,
        json!({"type": "response.reasoning_summary_part.added", "sequence_number": 3,
               "item_id": "rs_s2_0", "output_index": 0, "summary_index": 0,
               "part": {"type": "summary_text", "text": ""}})
    );
    assert_eq!(events[6].1["text"], "Thinking.");
    assert_eq!(
        events[15].1["item"],
        json!({"id": "fc_s2_2", "type": "function_call", "status": "in_progress",
               "call_id": "call_a", "name": "f", "arguments": ""})
    );
    assert_eq!(
        events[18].1,
        json!({"type": "response.function_call_arguments.done", "sequence_number": 18,
               "item_id": "fc_s2_2", "output_index": 2, "name": "f", "arguments": "{\"a\":1}"})
    );
    let output = &events[30].1["response"]["output"];
    assert_eq!(output.as_array().unwrap().len(), 5);
    assert_eq!(
        output[0],
        json!({"id": "rs_s2_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking."}]})
    );
    assert_eq!(output[3]["call_id"], "call_b");
    assert_eq!(output[3]["arguments"], "{}");
    assert_eq!(output[4]["id"], "msg_s2_4");
    assert_eq!(output[4]["status"], "completed");
}

#[test]
fn refusal_deltas_are_a_refusal_part() {
    let mut t = ChatToResponsesStream::new("resp_r", "m", &json!({}));
    let out = feed(
        &mut t,
        &[
            chunk(json!({"content": "Hmm. "}), None),
            chunk(json!({"refusal": "No."}), None),
            chunk(json!({}), Some("stop")),
            SseEvent::data("[DONE]"),
        ],
    );
    let events = check_responses_stream(&out);
    assert_eq!(
        types(&events)[2..],
        [
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.content_part.added",
            "response.refusal.delta",
            "response.refusal.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[7].1["content_index"], 1);
    assert_eq!(events[9].1["refusal"], "No.");
    assert_eq!(
        events[11].1["item"]["content"],
        json!([{"type": "output_text", "text": "Hmm. ", "annotations": [], "logprobs": []},
               {"type": "refusal", "refusal": "No."}])
    );
}

#[test]
fn length_finish_is_incomplete() {
    let mut t = ChatToResponsesStream::new("resp_l", "m", &json!({"max_output_tokens": 3}));
    let out = feed(
        &mut t,
        &[
            chunk(json!({"content": "Once"}), Some("length")),
            usage_chunk(),
        ],
    );
    let events = check_responses_stream(&out);
    let (ty, last) = events.last().unwrap();
    assert_eq!(ty, "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(last["response"]["output"][0]["status"], "incomplete");
    assert_eq!(last["response"]["max_output_tokens"], 3);
    assert_eq!(last["response"]["usage"]["total_tokens"], 15);
}

#[test]
fn upstream_errors_and_cut_streams_fail() {
    // An error frame mid-stream.
    let mut t = ChatToResponsesStream::new("resp_e", "m", &json!({}));
    let out = feed(
        &mut t,
        &[
            chunk(json!({"content": "Hel"}), None),
            SseEvent::data(
                json!({"error": {"message": "This model's maximum context length is 8192 tokens",
                                  "type": "invalid_request_error", "param": null,
                                  "code": "context_length_exceeded"}})
                .to_string(),
            ),
            chunk(json!({"content": "lo"}), None),
        ],
    );
    let events = check_responses_stream(&out);
    let (ty, last) = events.last().unwrap();
    assert_eq!(ty, "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(
        last["response"]["error"],
        json!({"code": "context_length_exceeded", "message": "This model's maximum context length is 8192 tokens"})
    );
    assert_eq!(last["response"]["usage"], Value::Null);
    assert!(t.saw_terminal());

    // Anthropic error types as the Anthropic translation forwards them.
    for (code, ty, message, want) in [
        (
            "overloaded_error",
            "server_error",
            "Overloaded",
            "server_error",
        ),
        (
            "rate_limit_error",
            "rate_limit_error",
            "slow down",
            "rate_limit_exceeded",
        ),
        (
            "invalid_request_error",
            "invalid_request_error",
            "prompt is too long: 2000 tokens",
            "context_length_exceeded",
        ),
    ] {
        let mut t = ChatToResponsesStream::new("resp_e", "m", &json!({}));
        let err = json!({"error": {"message": message, "type": ty, "param": null, "code": code}});
        let out = t.on_event(&SseEvent::data(err.to_string())).unwrap();
        let events = check_responses_stream(&out);
        assert_eq!(events.last().unwrap().1["response"]["error"]["code"], want);
    }

    // The upstream closes without a finish_reason or [DONE].
    let mut t = ChatToResponsesStream::new("resp_c", "m", &json!({}));
    let out = feed(&mut t, &[chunk(json!({"content": "Hel"}), None)]);
    let events = check_responses_stream(&out);
    let (ty, last) = events.last().unwrap();
    assert_eq!(ty, "response.failed");
    assert_eq!(last["response"]["error"]["code"], "server_error");
    // The item that was cut off is incomplete in the final response.
    assert_eq!(last["response"]["output"][0]["status"], "incomplete");

    // A finish_reason without usage or [DONE] still completes at finish().
    let mut t = ChatToResponsesStream::new("resp_f", "m", &json!({}));
    let out = feed(&mut t, &[chunk(json!({"content": "Hi"}), Some("stop"))]);
    let events = check_responses_stream(&out);
    assert_eq!(events.last().unwrap().0, "response.completed");

    // An empty upstream still gets created, in_progress and a failure.
    let mut t = ChatToResponsesStream::new("resp_0", "m", &json!({}));
    let events = check_responses_stream(&t.finish());
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );
}

#[test]
fn bad_upstream_data_is_an_upstream_error() {
    let mut t = ChatToResponsesStream::new("resp_b", "m", &json!({}));
    assert!(matches!(t.on_event(&SseEvent::data("{oops")), Err(ref e) if e.is_upstream()));
    let call = |i: u64, id: Option<&str>| {
        let mut c = json!({"index": i, "function": {"arguments": "{}"}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["function"]["name"] = json!("f");
        }
        chunk(json!({"tool_calls": [c]}), None)
    };
    t.on_event(&call(0, Some("a"))).unwrap();
    t.on_event(&call(1, Some("b"))).unwrap();
    assert!(matches!(t.on_event(&call(0, None)), Err(ref e) if e.is_upstream()));
}

#[test]
fn tool_calls_without_index_are_told_apart_by_id() {
    let mut t = ChatToResponsesStream::new("resp_i", "m", &json!({}));
    let call = |id: Option<&str>, args: &str| {
        let mut c = json!({"function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["function"]["name"] = json!("f");
        }
        chunk(json!({"tool_calls": [c]}), None)
    };
    let out = feed(
        &mut t,
        &[
            call(Some("a"), "{"),
            call(None, "}"),
            call(Some("b"), "[]"),
            chunk(json!({}), Some("tool_calls")),
            SseEvent::data("[DONE]"),
        ],
    );
    check_responses_stream(&out);
    let resp = t.response();
    assert_eq!(resp["output"][0]["arguments"], "{}");
    assert_eq!(resp["output"][1]["call_id"], "b");
    assert_eq!(resp["output"][1]["arguments"], "[]");
}

#[test]
fn too_many_items_is_an_upstream_error() {
    let mut t = ChatToResponsesStream::new("resp_m", "m", &json!({}));
    for i in 0..MAX_OUTPUT_ITEMS as u64 {
        let c =
            json!({"index": i, "id": format!("c{i}"), "function": {"name": "f", "arguments": ""}});
        t.on_event(&chunk(json!({"tool_calls": [c]}), None))
            .unwrap();
    }
    let c = json!({"index": 99_999, "id": "last", "function": {"name": "f", "arguments": ""}});
    assert!(matches!(
        t.on_event(&chunk(json!({"tool_calls": [c]}), None)),
        Err(ref e) if e.is_upstream()
    ));
}

// ---------------------------------------------------------------------------------------------
// Composition with the Anthropic translation

#[test]
fn responses_request_reaches_anthropic() {
    let req = json!({
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
                {"type": "input_image", "image_url": "https://example.com/a.jpg"},
            ]},
            {"type": "function_call", "call_id": "toolu_1", "name": "lookup", "arguments": "{\"q\":\"x\"}"},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "found"},
        ],
        "tools": [{"type": "function", "name": "lookup", "description": "Look up",
                   "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}],
        "tool_choice": "auto",
        "max_output_tokens": 500,
    });
    let chat = responses_to_chat(&req, "claude-sonnet-4-5").unwrap();
    let anthropic = openai_chat_to_anthropic(&chat, "claude-sonnet-4-5").unwrap();
    assert_eq!(anthropic["system"], "Be brief.");
    assert_eq!(anthropic["max_tokens"], 500);
    assert_eq!(
        anthropic["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"},
            ]},
        ])
    );
    assert_eq!(
        anthropic["tools"],
        json!([{"name": "lookup", "description": "Look up",
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}])
    );
    assert_eq!(anthropic["tool_choice"], json!({"type": "auto"}));
}

#[test]
fn anthropic_answer_becomes_a_response_and_thinking_round_trips() {
    let anthropic = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Use the tool.", "signature": "sig-1"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {"q": "x"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 100,
                  "cache_creation_input_tokens": 20, "output_tokens": 30},
    });
    let chat = anthropic_response_to_openai(&anthropic, "");
    let req = json!({"input": "go", "include": ["reasoning.encrypted_content"]});
    let resp = chat_response_to_responses(&chat, &req, "resp_a");
    let output = resp["output"].as_array().unwrap();
    assert_eq!(output.len(), 3);
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(
        output[0]["summary"],
        json!([{"type": "summary_text", "text": "Use the tool."}])
    );
    assert_eq!(output[1]["content"][0]["text"], "Checking.");
    assert_eq!(
        output[2],
        json!({"id": "fc_a_2", "type": "function_call", "status": "completed", "call_id": "toolu_9",
               "name": "lookup", "arguments": "{\"q\":\"x\"}"})
    );
    assert_eq!(resp["model"], "claude-sonnet-4-5");
    assert_eq!(resp["status"], "completed");
    // Cache reads and writes survive both hops; input_tokens is the whole prompt.
    assert_eq!(
        resp["usage"],
        json!({"input_tokens": 130, "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20},
               "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 160})
    );

    // The client sends the output back with the tool result: the signed thinking reaches
    // Anthropic again, before the text and the tool use.
    let mut input = vec![json!({"role": "user", "content": "go"})];
    input.extend(output.iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": "toolu_9", "output": "42"}));
    let chat = responses_to_chat(&json!({"input": input}), "claude").unwrap();
    let anthropic = openai_chat_to_anthropic(&chat, "claude").unwrap();
    assert_eq!(
        anthropic["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Use the tool.", "signature": "sig-1"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {"q": "x"}},
        ]})
    );
    assert_eq!(
        anthropic["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_9", "content": "42"})
    );
}

#[test]
fn what_the_anthropic_composition_loses() {
    // A JSON schema output format passes the first hop and is refused by the second.
    let req = json!({"input": "x", "text": {"format": {"type": "json_schema", "name": "a",
                                                      "schema": {"type": "object"}}}});
    let chat = responses_to_chat(&req, "claude").unwrap();
    assert_eq!(
        openai_chat_to_anthropic(&chat, "claude"),
        Err(TranslateError::Unsupported("response_format".into()))
    );
    // Unsigned reasoning (a summary only) is not sent to Anthropic.
    let req = json!({"input": [
        {"role": "user", "content": "go"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hmm"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "again"},
    ]});
    let chat = responses_to_chat(&req, "claude").unwrap();
    assert_eq!(chat["messages"][1]["reasoning_content"], "hmm");
    let anthropic = openai_chat_to_anthropic(&chat, "claude").unwrap();
    assert_eq!(
        anthropic["messages"][1],
        json!({"role": "assistant", "content": "ok"})
    );
}

const ANTHROPIC_STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":2048,\"output_tokens\":2}}}\n\
\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Weather needs a tool.\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\
\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\
\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me look.\"}}\n\
\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":1}\n\
\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1\",\"name\":\"get_weather\",\"input\":{}}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"Paris\\\"}\"}}\n\
\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":2}\n\
\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\
\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\
\n";

#[test]
fn anthropic_stream_through_chat_becomes_responses_events() {
    let req = json!({"input": "weather in Paris?", "stream": true});
    let mut a2o = AnthropicToOpenAiStream::new("claude-sonnet-4-5", true);
    let mut c2r = ChatToResponsesStream::new("resp_as", "claude-sonnet-4-5", &req);
    let mut out = run(ANTHROPIC_STREAM.as_bytes(), &[], |ev| {
        let mut out = Vec::new();
        for chat in a2o.on_event(ev).unwrap() {
            out.extend(c2r.on_event(&chat).unwrap());
        }
        out
    });
    out.extend(c2r.finish());
    let events = check_responses_stream(&out);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let reasoning = &events[7].1["item"];
    assert_eq!(reasoning["summary"][0]["text"], "Weather needs a tool.");
    let enc = reasoning["encrypted_content"].as_str().unwrap();
    assert!(enc.starts_with(THINKING_BLOCKS_PREFIX), "{enc}");
    assert_eq!(
        events[18].1["item"],
        json!({"id": "fc_as_2", "type": "function_call", "status": "completed", "call_id": "toolu_01T1",
               "name": "get_weather", "arguments": "{\"location\": \"Paris\"}"})
    );
    let done = &events[19].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["usage"]["input_tokens"], 2520);
    assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 2048);
    assert_eq!(done["usage"]["output_tokens"], 89);
    assert!(a2o.saw_terminal() && c2r.saw_terminal());

    // The streamed reasoning item, sent back, restores the signed thinking block.
    let chat = responses_to_chat(
        &json!({"input": [reasoning.clone(), events[13].1["item"].clone(), events[18].1["item"].clone(),
                          {"type": "function_call_output", "call_id": "toolu_01T1", "output": "sunny"}]}),
        "claude",
    )
    .unwrap();
    let anthropic = openai_chat_to_anthropic(&chat, "claude").unwrap();
    assert_eq!(
        anthropic["messages"][0]["content"][0],
        json!({"type": "thinking", "thinking": "Weather needs a tool.", "signature": "EqQBCgIYAhIM"})
    );
}

#[test]
fn stream_translation_is_independent_of_chunk_boundaries() {
    let run_cut = |cuts: &[usize]| {
        let mut a2o = AnthropicToOpenAiStream::new("claude", true);
        let mut c2r = ChatToResponsesStream::new("resp_x", "claude", &json!({}));
        let mut out = run(ANTHROPIC_STREAM.as_bytes(), cuts, |ev| {
            let mut out = Vec::new();
            for chat in a2o.on_event(ev).unwrap() {
                out.extend(c2r.on_event(&chat).unwrap());
            }
            out
        });
        out.extend(c2r.finish());
        // `created_at` is the translation time.
        out.into_iter()
            .map(|ev| {
                let mut v: Value = serde_json::from_str(&ev.data).unwrap();
                if let Some(r) = v.get_mut("response") {
                    r["created_at"] = json!(0);
                    r["completed_at"] = json!(0);
                }
                v
            })
            .collect::<Vec<_>>()
    };
    let whole = run_cut(&[]);
    let len = ANTHROPIC_STREAM.len();
    for cut in (1..len).step_by(7) {
        assert_eq!(run_cut(&[cut]), whole, "split at byte {cut}");
    }
}
