//! Acceptance point 4: every MuxRule matcher type, priority order and ties by name, a
//! RouterPolicy beating the mux rules, each policy match field, and a policy fallback taken
//! when the primary answers 503 (both attempts recorded).
//!
//! Each rule or policy sends its requests to the same mock with its own model name, so the
//! model the mock received tells which rule decided.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_dataplane::record::Outcome;
use switchyard_mock::MockUpstream;
use switchyard_tests::harness::manifests::{
    mux_rule, provider, router_policy, to_provider, workspace,
};
use switchyard_tests::harness::{Answer, Gateway};

async fn mock() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The default workspace and a provider `p` on the mock declaring `demo-fast`.
fn base(mock: &MockUpstream) -> Vec<Value> {
    vec![
        workspace("default", true),
        provider(
            "p",
            "openai",
            &format!("{}/v1", mock.base_url()),
            &["demo-fast"],
        ),
    ]
}

fn rule(name: &str, priority: i32, matcher: &str, pattern: Option<&str>, model: &str) -> Value {
    mux_rule(
        name,
        "default",
        priority,
        matcher,
        pattern,
        to_provider("p", Some(model)),
    )
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

fn fim(prompt: &str) -> Value {
    json!({"model": "demo-fast", "prompt": prompt, "suffix": "\n}\n"})
}

/// Sends a request and returns (answer, model the mock received).
async fn send(
    gw: &Gateway,
    mock: &MockUpstream,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (Answer, String) {
    let before = mock.requests().len();
    let a = gw.post_with(path, body, headers).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let got = mock.requests();
    assert_eq!(got.len(), before + 1, "one upstream call");
    (a, got.last().unwrap().model().unwrap().to_owned())
}

#[tokio::test]
async fn catch_all_takes_every_request() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(rule("everything", 100, "catch_all", None, "m-catch"));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    for (path, body) in [
        ("/v1/chat/completions", chat("anything-at-all", "hi")),
        ("/v1/completions", fim("fn main() {")),
        ("/v1/embeddings", json!({"model": "whatever", "input": "x"})),
    ] {
        let (a, model) = send(&gw, &mock, path, &body, &[]).await;
        assert_eq!(model, "m-catch", "{path}");
        assert_eq!(
            a.route(),
            "muxrule=default/everything; target=provider/p; model=m-catch"
        );
        let r = gw.record_of(&a.request_id()).await.unwrap();
        let route = r.route.unwrap();
        assert_eq!(
            (route.source.as_str(), route.rule.as_deref()),
            ("muxrule", Some("default/everything"))
        );
        assert_eq!(r.model_served.as_deref(), Some("m-catch"));
    }
}

#[tokio::test]
async fn filename_match_globs_a_filename_mentioned_in_the_prompt() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(rule(
        "python",
        10,
        "filename_match",
        Some("*.py"),
        "m-python",
    ));
    objects.push(rule("rest", 100, "catch_all", None, "m-default"));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let cases = [
        (
            "/v1/chat/completions",
            chat("demo-fast", "please fix src/app/main.py for me"),
            "m-python",
        ),
        (
            "/v1/chat/completions",
            chat("demo-fast", "please fix src/lib.rs for me"),
            "m-default",
        ),
        (
            "/v1/chat/completions",
            chat("demo-fast", "no file here at all"),
            "m-default",
        ),
        (
            "/v1/completions",
            fim("# Path: tools/gen.py\ndef gen("),
            "m-python",
        ),
        (
            "/v1/messages",
            json!({"model": "demo-fast", "max_tokens": 10, "messages": [{"role": "user", "content": "Look at `utils/helpers.py`"}]}),
            "m-python",
        ),
    ];
    for (path, body, want) in cases {
        let (a, model) = send(&gw, &mock, path, &body, &[]).await;
        assert_eq!(model, want, "{body}");
        assert!(a.route().contains(&format!("model={want}")));
    }
}

#[tokio::test]
async fn fim_filename_matches_only_fill_in_the_middle_requests() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(rule("fim-rust", 10, "fim_filename", Some("*.rs"), "m-fim"));
    objects.push(rule("rest", 100, "catch_all", None, "m-default"));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let cases = [
        (
            "/v1/completions",
            fim("// Path: src/main.rs\nfn main() {"),
            "m-fim",
        ),
        (
            "/v1/completions",
            json!({"model": "demo-fast", "prompt": "<|fim_prefix|>// src/main.rs\nfn a(<|fim_suffix|>)<|fim_middle|>"}),
            "m-fim",
        ),
        (
            "/v1/completions",
            fim("// Path: src/main.py\ndef f("),
            "m-default",
        ),
        (
            "/v1/completions",
            json!({"model": "demo-fast", "prompt": "// src/main.rs explained:"}),
            "m-default",
        ),
        (
            "/v1/chat/completions",
            chat("demo-fast", "explain src/main.rs"),
            "m-default",
        ),
    ];
    for (path, body, want) in cases {
        let (_, model) = send(&gw, &mock, path, &body, &[]).await;
        assert_eq!(model, want, "{body}");
    }
}

#[tokio::test]
async fn chat_filename_matches_only_chat_requests() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(rule("chat-ts", 10, "chat_filename", Some("*.ts"), "m-chat"));
    objects.push(rule("chat-any", 20, "chat_filename", None, "m-chat-any"));
    objects.push(rule("rest", 100, "catch_all", None, "m-default"));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let cases = [
        (
            "/v1/chat/completions",
            chat("demo-fast", "see utils/helpers.ts"),
            "m-chat",
        ),
        (
            "/v1/messages",
            json!({"model": "demo-fast", "max_tokens": 10, "messages": [{"role": "user", "content": "see utils/helpers.ts"}]}),
            "m-chat",
        ),
        (
            "/v1/chat/completions",
            chat("demo-fast", "no filename"),
            "m-chat-any",
        ),
        (
            "/v1/completions",
            fim("// utils/helpers.ts\nexport function f("),
            "m-default",
        ),
        (
            "/v1/completions",
            json!({"model": "demo-fast", "prompt": "// utils/helpers.ts is about"}),
            "m-default",
        ),
        (
            "/v1/embeddings",
            json!({"model": "demo-fast", "input": "utils/helpers.ts"}),
            "m-default",
        ),
    ];
    for (path, body, want) in cases {
        let (_, model) = send(&gw, &mock, path, &body, &[]).await;
        assert_eq!(model, want, "{path} {body}");
    }
}

#[tokio::test]
async fn model_matcher_globs_the_requested_model() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(rule("gpt4", 10, "model", Some("gpt-4*"), "m-gpt4"));
    objects.push(rule(
        "claude",
        20,
        "model",
        Some("claude-*-{4,5}"),
        "m-claude",
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    for (requested, want) in [
        ("gpt-4o-mini", "m-gpt4"),
        ("claude-sonnet-4", "m-claude"),
        ("claude-haiku-5", "m-claude"),
    ] {
        let (_, model) = send(
            &gw,
            &mock,
            "/v1/chat/completions",
            &chat(requested, "hi"),
            &[],
        )
        .await;
        assert_eq!(model, want, "{requested}");
    }
    // No rule matches and no provider declares the model: 404.
    let a = gw
        .post("/v1/chat/completions", &chat("claude-sonnet-3", "hi"))
        .await
        .unwrap();
    assert_eq!(a.status, 404, "{}", a.text);
    // A declared model is still reachable without a rule.
    let (a, model) = send(
        &gw,
        &mock,
        "/v1/chat/completions",
        &chat("demo-fast", "hi"),
        &[],
    )
    .await;
    assert_eq!(model, "demo-fast");
    assert_eq!(a.route(), "model; target=provider/p; model=demo-fast");
}

#[tokio::test]
async fn lower_priority_first_and_ties_by_name() {
    let mock = mock().await;
    let mut objects = base(&mock);
    // Listed in the opposite order of evaluation.
    objects.push(rule("b-rule", 10, "catch_all", None, "m-b"));
    objects.push(rule("a-rule", 10, "catch_all", None, "m-a"));
    objects.push(rule("z-special", 5, "model", Some("special"), "m-special"));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let (a, model) = send(
        &gw,
        &mock,
        "/v1/chat/completions",
        &chat("special", "hi"),
        &[],
    )
    .await;
    assert_eq!(
        model, "m-special",
        "priority 5 before 10, whatever the name"
    );
    assert!(a.route().starts_with("muxrule=default/z-special;"));
    let (a, model) = send(
        &gw,
        &mock,
        "/v1/chat/completions",
        &chat("other", "hi"),
        &[],
    )
    .await;
    assert_eq!(model, "m-a", "equal priorities: a-rule before b-rule");
    assert!(a.route().starts_with("muxrule=default/a-rule;"));
}

#[tokio::test]
async fn an_enabled_router_policy_beats_the_mux_rules() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(rule("everything", 0, "catch_all", None, "m-mux"));
    objects.push(router_policy(
        "smart",
        100,
        json!({"model": "demo-*"}),
        to_provider("p", Some("m-policy")),
        vec![],
    ));
    let mut off = router_policy(
        "off",
        1,
        json!({"model": "other-*"}),
        to_provider("p", Some("m-disabled")),
        vec![],
    );
    off["spec"]["enabled"] = json!(false);
    objects.push(off);
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let (a, model) = send(
        &gw,
        &mock,
        "/v1/chat/completions",
        &chat("demo-smart", "hi"),
        &[],
    )
    .await;
    assert_eq!(model, "m-policy");
    assert_eq!(
        a.route(),
        "policy=default/smart; target=provider/p; model=m-policy"
    );
    let r = gw.record_of(&a.request_id()).await.unwrap();
    let route = r.route.unwrap();
    assert_eq!(
        (route.source.as_str(), route.rule.as_deref()),
        ("policy", Some("default/smart"))
    );
    let (_, model) = send(
        &gw,
        &mock,
        "/v1/chat/completions",
        &chat("other-model", "hi"),
        &[],
    )
    .await;
    assert_eq!(model, "m-mux", "a disabled policy never applies");
}

#[tokio::test]
async fn each_policy_match_field_selects_its_requests() {
    let mock = mock().await;
    let mut objects = base(&mock);
    let mut team = workspace("team-b", false);
    team["metadata"]["labels"] = json!({"tier": "silver"});
    let mut gold = workspace("gold", false);
    gold["metadata"]["labels"] = json!({"tier": "gold"});
    objects.push(team);
    objects.push(gold);
    let policies = [
        (
            "by-endpoint",
            json!({"endpointType": "completions"}),
            "m-completions",
        ),
        ("by-model", json!({"model": "special-*"}), "m-model"),
        ("by-stream", json!({"requiresStreaming": true}), "m-stream"),
        (
            "by-tools",
            json!({"requiresFunctionCalling": true}),
            "m-tools",
        ),
        ("by-vision", json!({"requiresVision": true}), "m-vision"),
        ("by-tags", json!({"tags": {"team": "search"}}), "m-tags"),
        (
            "by-workspace",
            json!({"workspace": "team-b"}),
            "m-workspace",
        ),
        (
            "by-selector",
            json!({"workspaceSelector": {"matchLabels": {"tier": "gold"}}}),
            "m-gold",
        ),
    ];
    for (i, (name, matching, model)) in policies.iter().enumerate() {
        objects.push(router_policy(
            name,
            10 * (i as i32 + 1),
            matching.clone(),
            to_provider("p", Some(model)),
            vec![],
        ));
    }
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let image = json!([{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]);
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    type Case<'a> = (&'a str, Value, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/v1/chat/completions",
            chat("demo-fast", "plain"),
            vec![],
            "demo-fast",
        ),
        (
            "/v1/completions",
            json!({"model": "demo-fast", "prompt": "hello"}),
            vec![],
            "m-completions",
        ),
        (
            "/v1/chat/completions",
            chat("special-1", "hi"),
            vec![],
            "m-model",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "demo-fast", "stream": true, "messages": [{"role": "user", "content": "s"}]}),
            vec![],
            "m-stream",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "demo-fast", "tools": tools, "messages": [{"role": "user", "content": "t"}]}),
            vec![],
            "m-tools",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "demo-fast", "messages": [{"role": "user", "content": image}]}),
            vec![],
            "m-vision",
        ),
        (
            "/v1/chat/completions",
            chat("demo-fast", "tagged"),
            vec![("x-switchyard-tags", "env=prod, team=search")],
            "m-tags",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "demo-fast", "tags": ["team=search"], "messages": [{"role": "user", "content": "x"}]}),
            vec![],
            "m-tags",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "demo-fast", "tags": {"team": "search"}, "messages": [{"role": "user", "content": "x"}]}),
            vec![],
            "m-tags",
        ),
        (
            "/v1/chat/completions",
            chat("demo-fast", "x"),
            vec![("x-switchyard-tags", "team=other")],
            "demo-fast",
        ),
        (
            "/v1/chat/completions",
            chat("demo-fast", "x"),
            vec![("x-switchyard-workspace", "team-b")],
            "m-workspace",
        ),
        (
            "/v1/chat/completions",
            chat("demo-fast", "x"),
            vec![("x-switchyard-workspace", "gold")],
            "m-gold",
        ),
    ];
    for (path, body, headers, want) in cases {
        let (a, model) = send(&gw, &mock, path, &body, &headers).await;
        assert_eq!(model, want, "{path} {body} {headers:?}");
        if want.starts_with("m-") {
            assert!(a.route().starts_with("policy=default/by-"), "{}", a.route());
        }
    }
    // Body tags never reach the upstream.
    assert!(mock.requests().iter().all(|r| r.body.get("tags").is_none()));
    let tagged: Vec<_> = gw
        .wait_records(12)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.tags.contains_key("team"))
        .collect();
    assert!(
        tagged.len() >= 3
            && tagged
                .iter()
                .any(|r| r.tags.get("env").map(String::as_str) == Some("prod"))
    );
}

#[tokio::test]
async fn policy_fallback_is_taken_when_the_primary_answers_503() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(provider(
        "backup",
        "openai",
        &format!("{}/v1", mock.base_url()),
        &["demo-fast"],
    ));
    objects.push(router_policy(
        "resilient",
        10,
        json!({"model": "demo-*"}),
        to_provider("p", Some("demo-fast+status=503")),
        vec![to_provider("backup", Some("demo-fast"))],
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    for stream in [false, true] {
        mock.clear();
        let a = gw
            .post("/v1/chat/completions", &json!({"model": "demo-smart", "stream": stream, "messages": [{"role": "user", "content": "fall back please"}]}))
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(
            a.route(),
            "policy=default/resilient; target=provider/backup; model=demo-fast"
        );
        let text = if stream {
            switchyard_tests::harness::openai_stream_text(&a.sse_data().unwrap().0)
        } else {
            a.json().unwrap()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(text, "mock reply: fall back please");
        let models: Vec<String> = mock
            .requests()
            .iter()
            .map(|r| r.model().unwrap().to_owned())
            .collect();
        assert_eq!(models, ["demo-fast+status=503", "demo-fast"]);

        let recs = gw.records_of(&a.request_id()).await.unwrap();
        assert_eq!(recs.len(), 1, "one record for both attempts");
        let r = &recs[0];
        assert_eq!(r.outcome, Outcome::Success);
        assert_eq!(r.status, 200);
        assert_eq!(r.provider_name.as_deref(), Some("default/backup"));
        assert_eq!(r.attempts.len(), 2, "{:?}", r.attempts);
        assert_eq!(r.attempts[0].target, "provider/p:demo-fast+status=503");
        assert_eq!(r.attempts[0].status, Some(503));
        assert!(
            r.attempts[0]
                .error
                .as_deref()
                .unwrap()
                .contains("scripted status 503")
        );
        assert_eq!(r.attempts[1].target, "provider/backup:demo-fast");
        assert_eq!(r.attempts[1].status, Some(200));
        assert!(r.attempts[1].error.is_none());
        assert_eq!(
            r.route.as_ref().unwrap().target,
            "provider/backup:demo-fast"
        );
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (3, 5));
    }
}
