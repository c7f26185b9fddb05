use serde_json::json;

use super::*;
use crate::translate::tests::err_param;

fn base() -> Value {
    json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

fn to(req: &Value, target: ChatTarget) -> Result<Value, TranslateError> {
    anthropic_to_openai_chat(req, "m", target)
}

fn unsupported(r: Result<Value, TranslateError>) -> String {
    match r {
        Err(TranslateError::Unsupported(what)) => what,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

fn roles(out: &Value) -> Vec<&str> {
    out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect()
}

#[test]
fn built_in_tools_mcp_servers_and_bad_roles_are_refused() {
    let mut req = base();
    req["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let what = unsupported(to(&req, ChatTarget::OpenAi));
    assert!(what.starts_with("tools[0].type"), "{what}");
    assert!(
        what.contains("web_search_20250305") && what.contains("\"web_search\""),
        "{what}"
    );
    for ty in [
        "bash_20250124",
        "text_editor_20250728",
        "computer_20250124",
        "code_execution_20250825",
    ] {
        req["tools"] = json!([{"name": "x", "input_schema": {"type": "object"}},
                              {"type": ty, "name": "t"}]);
        assert!(unsupported(to(&req, ChatTarget::Vllm)).contains(ty));
    }
    let mut req = base();
    req["mcp_servers"] = json!([{"type": "url", "url": "https://mcp.example", "name": "m"}]);
    assert_eq!(unsupported(to(&req, ChatTarget::Other)), "mcp_servers");
    let mut req = base();
    req["messages"][0]["role"] = json!("developer");
    let (param, message) = err_param(to(&req, ChatTarget::OpenAi));
    assert_eq!(param, "messages[0].role");
    assert!(message.contains("developer"), "{message}");
}

#[test]
fn leading_system_entries_join_the_system_prompt_without_billing_header() {
    let req = json!({"max_tokens": 10,
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.0; cch=1a2b3;"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
    ],
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Repo rules."}]},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"}
    ]});
    for target in [ChatTarget::OpenAi, ChatTarget::Vllm] {
        let out = to(&req, target).unwrap();
        assert_eq!(
            out["messages"],
            json!([
                {"role": "system", "content": "You are Claude Code.\n\nRepo rules.\n\nBe brief."},
                {"role": "user", "content": "hi"}
            ])
        );
    }
    // Only system entries, no top-level system.
    let req = json!({"messages": [{"role": "system", "content": "S"},
                                  {"role": "user", "content": "u"}]});
    assert_eq!(
        roles(&to(&req, ChatTarget::Ollama).unwrap()),
        ["system", "user"]
    );
    // A non-text system block is invalid, with its path.
    let req = json!({"messages": [{"role": "system", "content": [{"type": "image"}]},
                                  {"role": "user", "content": "u"}]});
    assert_eq!(
        err_param(to(&req, ChatTarget::OpenAi)).0,
        "messages[0].content[0].type"
    );
}

fn inline_system_conversation() -> Value {
    json!({"max_tokens": 10, "system": "S",
    "messages": [
        {"role": "user", "content": "first"},
        {"role": "system", "content": "after user"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}}
        ]},
        {"role": "system", "content": "inside tool run"},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "file a"}
        ]},
        {"role": "assistant", "content": "Done."},
        {"role": "system", "content": [{"type": "text", "text": "after assistant"}]},
        {"role": "user", "content": "next"},
        {"role": "system", "content": "trailing"}
    ]})
}

#[test]
fn inline_system_entries_stay_in_place_on_openai() {
    let out = to(&inline_system_conversation(), ChatTarget::OpenAi).unwrap();
    assert_eq!(
        out["messages"],
        json!([
            {"role": "system", "content": "S"},
            {"role": "user", "content": "first"},
            {"role": "system", "content": "after user"},
            {"role": "assistant", "content": "Reading.", "tool_calls": [{"id": "toolu_1",
                "type": "function", "function": {"name": "Read",
                "arguments": "{\"file_path\":\"/a\"}"}}]},
            // Never between the tool calls and their answers.
            {"role": "tool", "tool_call_id": "toolu_1", "content": "file a"},
            {"role": "system", "content": "inside tool run"},
            {"role": "assistant", "content": "Done."},
            {"role": "system", "content": "after assistant"},
            {"role": "user", "content": "next"},
            {"role": "system", "content": "trailing"}
        ])
    );
}

#[test]
fn inline_system_entries_fold_into_neighbours_elsewhere() {
    for target in [ChatTarget::Vllm, ChatTarget::Ollama, ChatTarget::Other] {
        let out = to(&inline_system_conversation(), target).unwrap();
        assert_eq!(
            out["messages"],
            json!([
                {"role": "system", "content": "S"},
                {"role": "user", "content": "first\n\nafter user"},
                {"role": "assistant", "content": "Reading.", "tool_calls": [{"id": "toolu_1",
                    "type": "function", "function": {"name": "Read",
                    "arguments": "{\"file_path\":\"/a\"}"}}]},
                // Appended to the tool result: no user turn after tool results.
                {"role": "tool", "tool_call_id": "toolu_1", "content": "file a\n\ninside tool run"},
                {"role": "assistant", "content": "Done."},
                {"role": "user", "content": "after assistant\n\nnext\n\ntrailing"}
            ]),
            "{target:?}"
        );
    }
    // Between two assistant messages, and last after an assistant: a user message of its own.
    let req = json!({"messages": [
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a1"},
        {"role": "system", "content": "between"},
        {"role": "assistant", "content": "a2"},
        {"role": "system", "content": "end"}
    ]});
    let out = to(&req, ChatTarget::Vllm).unwrap();
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "between"},
            {"role": "assistant", "content": "a2"},
            {"role": "user", "content": "end"}
        ])
    );
    // Into parts: merged with the text part at that end.
    let req = json!({"messages": [
        {"role": "assistant", "content": "a"},
        {"role": "system", "content": "note"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
        ]},
        {"role": "system", "content": "after image"}
    ]});
    let out = to(&req, ChatTarget::Vllm).unwrap();
    assert_eq!(
        out["messages"][1]["content"],
        json!([
            {"type": "text", "text": "note\n\nlook"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
            {"type": "text", "text": "after image"}
        ])
    );
    // Empty system entries (or only the billing header) leave no trace.
    let req = json!({"messages": [
        {"role": "user", "content": "u"},
        {"role": "system", "content": ""},
        {"role": "system", "content": "x-anthropic-billing-header: cch=1;"}
    ]});
    for target in [ChatTarget::OpenAi, ChatTarget::Vllm] {
        assert_eq!(
            to(&req, target).unwrap()["messages"],
            json!([{"role": "user", "content": "u"}])
        );
    }
}

#[test]
fn user_blocks_translate_or_are_refused_by_name() {
    let with = |content: Value| {
        let mut req = base();
        req["messages"][0]["content"] = content;
        req
    };
    // Text with cache_control and citations: plain text.
    let req = with(
        json!([{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"},
                           "citations": []}]),
    );
    assert_eq!(
        to(&req, ChatTarget::OpenAi).unwrap()["messages"][0]["content"],
        "hi"
    );
    // Image URL: kept except for Ollama, which reads base64 only.
    let req = with(json!([{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]));
    assert_eq!(
        to(&req, ChatTarget::Vllm).unwrap()["messages"][0]["content"][0]["image_url"]["url"],
        "https://x/y.png"
    );
    assert_eq!(
        unsupported(to(&req, ChatTarget::Ollama)),
        "messages[0].content[0].source.type"
    );
    // PDF: a file part on OpenAI, refused on vLLM (no file parts); text documents with title.
    let pdf = json!({"type": "document", "title": "spec.pdf",
                     "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}});
    let out = to(&with(json!([pdf.clone()])), ChatTarget::OpenAi).unwrap();
    assert_eq!(
        out["messages"][0]["content"][0],
        json!({"type": "file", "file": {"filename": "spec.pdf",
               "file_data": "data:application/pdf;base64,JVBE"}})
    );
    assert_eq!(
        unsupported(to(&with(json!([pdf])), ChatTarget::Vllm)),
        "messages[0].content[0].source.type"
    );
    let req = with(json!([{"type": "document", "title": "notes",
                           "source": {"type": "text", "media_type": "text/plain", "data": "body"}}]));
    assert_eq!(
        to(&req, ChatTarget::Vllm).unwrap()["messages"][0]["content"],
        "notes\n\nbody"
    );
    let req = with(
        json!([{"type": "document", "source": {"type": "content", "content": [
        {"type": "text", "text": "p1"}, {"type": "text", "text": "p2"}]}}]),
    );
    assert_eq!(
        to(&req, ChatTarget::Vllm).unwrap()["messages"][0]["content"],
        json!([{"type": "text", "text": "p1"}, {"type": "text", "text": "p2"}])
    );
    let req =
        with(json!([{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]));
    assert_eq!(
        unsupported(to(&req, ChatTarget::OpenAi)),
        "messages[0].content[0].source.type"
    );
    // Search results: text.
    let req = with(
        json!([{"type": "search_result", "source": "https://docs/x", "title": "X",
        "content": [{"type": "text", "text": "X is a thing."}], "citations": {"enabled": true}}]),
    );
    assert_eq!(
        to(&req, ChatTarget::OpenAi).unwrap()["messages"][0]["content"],
        "X\nhttps://docs/x\n\nX is a thing."
    );
    // Server-tool blocks: refused, naming the block.
    for ty in [
        "web_search_tool_result",
        "container_upload",
        "mcp_tool_result",
    ] {
        let req = with(json!([{"type": ty, "tool_use_id": "srvtoolu_1", "content": []}]));
        let what = unsupported(to(&req, ChatTarget::OpenAi));
        assert_eq!(what, format!("messages[0].content[0] (a `{ty}` block)"));
    }
    // Unknown block types: invalid, with the path.
    let req = with(json!([{"type": "text", "text": "a"}, {"type": "hologram"}]));
    let (param, message) = err_param(to(&req, ChatTarget::OpenAi));
    assert_eq!(param, "messages[0].content[1].type");
    assert!(message.contains("hologram"), "{message}");
}

#[test]
fn tool_results_keep_errors_visible_and_move_media_after_them() {
    let req = json!({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_a", "name": "Bash", "input": {"command": "false"}},
            {"type": "tool_use", "id": "toolu_b", "name": "Read", "input": {"file_path": "/p.png"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "is_error": true,
             "content": "Exit code 1"},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": [
                {"type": "text", "text": "Read image"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iV"}}
            ], "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "continue"}
        ]}
    ]});
    let out = to(&req, ChatTarget::Vllm).unwrap();
    assert_eq!(roles(&out), ["user", "assistant", "tool", "tool", "user"]);
    assert_eq!(out["messages"][2]["content"], "Error: Exit code 1");
    assert_eq!(
        out["messages"][3],
        json!({"role": "tool", "tool_call_id": "toolu_b",
                                          "content": "Read image"})
    );
    assert_eq!(
        out["messages"][4]["content"],
        json!([{"type": "text", "text": "continue"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iV"}}])
    );
    // An empty error result still says it failed.
    let req = json!({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "is_error": true}]}]});
    assert_eq!(
        to(&req, ChatTarget::OpenAi).unwrap()["messages"][0]["content"],
        "Error"
    );
    // Server-tool blocks inside a tool result are refused by name too.
    let req = json!({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "web_fetch_tool_result"}]}]}]});
    assert_eq!(
        unsupported(to(&req, ChatTarget::OpenAi)),
        "messages[0].content[0].content[0] (a `web_fetch_tool_result` block)"
    );
}

#[test]
fn assistant_thinking_is_dropped_and_server_tool_blocks_refused() {
    let req = json!({"max_tokens": 10,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "abc"}
        ]},
        {"role": "user", "content": "again"}
    ]});
    let out = to(&req, ChatTarget::OpenAi).unwrap();
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}])
    );
    assert!(out.get("thinking").is_none());
    assert!(out.get("reasoning_effort").is_none());

    let mut req = base();
    req["messages"] = json!([
        {"role": "user", "content": "search"},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
             "input": {"query": "q"}}
        ]}
    ]);
    assert_eq!(
        unsupported(to(&req, ChatTarget::Vllm)),
        "messages[1].content[0] (a `server_tool_use` block)"
    );
    req["messages"][1]["content"] = json!([{"type": "image", "source": {}}]);
    assert_eq!(
        err_param(to(&req, ChatTarget::Vllm)).0,
        "messages[1].content[0].type"
    );
    req["messages"][1]["content"] =
        json!([{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]);
    assert_eq!(
        err_param(to(&req, ChatTarget::Vllm)).0,
        "messages[1].content[0].input"
    );
}

#[test]
fn parameters_follow_the_target() {
    let mut req = base();
    req["top_k"] = json!(40);
    req["temperature"] = json!(1);
    req["thinking"] = json!({"type": "enabled", "budget_tokens": 31999});
    req["metadata"] = json!({"user_id": "u-1"});
    req["service_tier"] = json!("auto");
    req["context_management"] = json!({"edits": [{"type": "clear_tool_uses_20250919"}]});
    req["container"] = json!("container_1");
    let openai = to(&req, ChatTarget::OpenAi).unwrap();
    assert!(openai.get("top_k").is_none());
    assert!(openai.get("reasoning_effort").is_none());
    assert_eq!(openai["temperature"], 1);
    assert_eq!(openai["user"], "u-1");
    for key in [
        "service_tier",
        "context_management",
        "container",
        "thinking",
        "metadata",
    ] {
        assert!(openai.get(key).is_none(), "{key}");
    }
    let vllm = to(&req, ChatTarget::Vllm).unwrap();
    assert_eq!(vllm["top_k"], 40);
    assert_eq!(vllm["reasoning_effort"], "high");
    let ollama = to(&req, ChatTarget::Ollama).unwrap();
    assert_eq!(ollama["top_k"], 40);
    assert!(ollama.get("reasoning_effort").is_none());

    for (budget, effort) in [
        (1024, "low"),
        (4096, "low"),
        (10000, "medium"),
        (16385, "high"),
    ] {
        req["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        assert_eq!(
            to(&req, ChatTarget::Vllm).unwrap()["reasoning_effort"],
            effort
        );
    }
    req["thinking"] = json!({"type": "adaptive"});
    assert!(
        to(&req, ChatTarget::Vllm)
            .unwrap()
            .get("reasoning_effort")
            .is_none()
    );
    req["thinking"] = json!({"type": "enabled"});
    assert_eq!(
        err_param(to(&req, ChatTarget::OpenAi)).0,
        "thinking.budget_tokens"
    );
    req["thinking"] = json!({"type": "sometimes"});
    assert_eq!(err_param(to(&req, ChatTarget::OpenAi)).0, "thinking.type");
    req["thinking"] = Value::Null;
    req["top_k"] = json!(0);
    assert!(to(&req, ChatTarget::Vllm).unwrap().get("top_k").is_none());
    req["top_k"] = json!(-1);
    assert_eq!(err_param(to(&req, ChatTarget::Vllm)).0, "top_k");
}

#[test]
fn long_user_ids_are_hashed() {
    let id = "user_3f1c8e1a9b2d4c6e8f0a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e_account_\
              4f1e2d3c-5b6a-4789-8abc-def012345678_session_9a8b7c6d-5e4f-4321-9fed-cba987654321";
    let mut req = base();
    req["metadata"] = json!({"user_id": id});
    let user = to(&req, ChatTarget::OpenAi).unwrap()["user"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(user.len(), MAX_USER_LEN);
    assert!(user.chars().all(|c| c.is_ascii_hexdigit()), "{user}");
    assert_ne!(user, id[..MAX_USER_LEN]);
    // Stable, and distinct per id.
    assert_eq!(to(&req, ChatTarget::OpenAi).unwrap()["user"], json!(user));
    req["metadata"]["user_id"] = json!(format!("{id}x"));
    assert_ne!(to(&req, ChatTarget::OpenAi).unwrap()["user"], json!(user));
    let short = "a".repeat(MAX_USER_LEN);
    req["metadata"]["user_id"] = json!(short);
    assert_eq!(to(&req, ChatTarget::OpenAi).unwrap()["user"], json!(short));
}

#[test]
fn stop_sequences_and_tool_choice() {
    let mut req = base();
    req["stop_sequences"] = json!(["a", "b", "c", "d", "e"]);
    assert_eq!(
        unsupported(to(&req, ChatTarget::OpenAi)),
        "stop_sequences (more than 4)"
    );
    assert_eq!(
        to(&req, ChatTarget::Vllm).unwrap()["stop"],
        req["stop_sequences"]
    );
    req["stop_sequences"] = json!(["\n\nHuman:"]);
    assert_eq!(
        to(&req, ChatTarget::OpenAi).unwrap()["stop"],
        json!(["\n\nHuman:"])
    );
    req["stop_sequences"] = json!([1]);
    assert_eq!(
        err_param(to(&req, ChatTarget::OpenAi)).0,
        "stop_sequences[0]"
    );

    let mut req = base();
    req["tools"] = json!([{"name": "Bash", "description": "Run", "input_schema": {"type": "object"},
                           "cache_control": {"type": "ephemeral"}}]);
    for (choice, mapped, parallel) in [
        (json!({"type": "auto"}), json!("auto"), None),
        (
            json!({"type": "auto", "disable_parallel_tool_use": true}),
            json!("auto"),
            Some(false),
        ),
        (
            json!({"type": "any", "disable_parallel_tool_use": true}),
            json!("required"),
            Some(false),
        ),
        (
            json!({"type": "tool", "name": "Bash"}),
            json!({"type": "function", "function": {"name": "Bash"}}),
            None,
        ),
        (
            json!({"type": "none", "disable_parallel_tool_use": true}),
            json!("none"),
            None,
        ),
    ] {
        req["tool_choice"] = choice;
        let out = to(&req, ChatTarget::OpenAi).unwrap();
        assert_eq!(out["tool_choice"], mapped);
        assert_eq!(
            out.get("parallel_tool_calls").and_then(Value::as_bool),
            parallel
        );
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {"name": "Bash", "description": "Run",
                    "parameters": {"type": "object"}}}])
        );
    }
    req["tool_choice"] = json!({"type": "sometimes"});
    assert_eq!(
        err_param(to(&req, ChatTarget::OpenAi)).0,
        "tool_choice.type"
    );
}

#[test]
fn target_from_kind() {
    assert_eq!(ChatTarget::from_kind("openai"), ChatTarget::OpenAi);
    assert_eq!(ChatTarget::from_kind("vllm"), ChatTarget::Vllm);
    assert_eq!(ChatTarget::from_kind("ollama"), ChatTarget::Ollama);
    for kind in ["openrouter", "llamacpp", "lm_studio", "openai_compatible"] {
        assert_eq!(ChatTarget::from_kind(kind), ChatTarget::Other);
    }
}
