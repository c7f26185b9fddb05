//! TaskChains served as models, end to end with the mock upstream and a mock hook server: a
//! classification chain branching on `condition_key`, a numeric score with `in_range` (also
//! streamed), a hook whose JSON answer feeds `outputTemplate`, a `model_execution` step that
//! falls back through a RouterPolicy, explicit targets, stack traces, errors naming the task,
//! the run's interception with its thread of calls, and the operator's TaskChain status from
//! those records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_crds::record::{Interception, Outcome};
use switchyard_crds::usage::Usage;
use switchyard_mock::{Behavior, MockUpstream, ScriptRule};
use switchyard_tests::harness::manifests::{
    mux_rule, provider, router_policy, secret, task_chain_with, to_provider, workspace,
};
use switchyard_tests::harness::{Answer, Gateway, openai_stream_text};
use switchyard_tests::hook::MockHook;

async fn mock() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The default workspace, provider `p` on the mock, and a rule sending every model to it.
fn base(mock: &MockUpstream) -> Vec<Value> {
    vec![
        workspace("default", true),
        provider(
            "p",
            "openai",
            &format!("{}/v1", mock.base_url()),
            &["demo-fast", "demo-smart"],
        ),
        mux_rule("all", "default", 100, "model", None, to_provider("p", None)),
    ]
}

/// The next call for `model` answers `text`.
fn reply(mock: &MockUpstream, model: &str, text: &str) {
    mock.script(
        ScriptRule::new(Behavior {
            reply: Some(text.into()),
            ..Default::default()
        })
        .model(model)
        .times(1),
    );
}

fn ask(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

fn content(a: &Answer) -> String {
    a.json().unwrap()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn classification() -> Value {
    task_chain_with(
        "triage",
        json!({"tasks": [
            {"id": "classify", "handler": "condition_key", "validConditions": ["positive", "negative"],
             "promptTemplate": "Is this positive or negative? {{.input}}",
             "execute": {"model": "classifier"},
             "transition": {"branches": [
                {"operator": "equals", "when": "positive", "goto": "thank"},
                {"operator": "equals", "when": "negative", "goto": "apologise"}]}},
            {"id": "thank", "handler": "model_execution", "inputVar": "input",
             "systemInstruction": "Thank the customer.", "execute": {"model": "demo-fast"}},
            {"id": "apologise", "handler": "noop", "promptTemplate": "We are sorry to hear that."}
        ]}),
    )
}

/// The run's record and the records of its calls (in call order).
async fn run_and_calls(gw: &Gateway, request_id: &str) -> (Interception, Vec<Interception>) {
    let run = gw.record_of(request_id).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    let mut calls: Vec<Interception> = gw
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| r.thread_root_id == Some(run.id))
        .collect();
    calls.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    (run, calls)
}

fn sum(calls: &[Interception]) -> Usage {
    let mut u = Usage::default();
    for c in calls {
        u.input_tokens += c.usage.input_tokens;
        u.output_tokens += c.usage.output_tokens;
    }
    u
}

#[tokio::test]
async fn classification_chain_branches_on_condition_key() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(classification());
    let gw = Gateway::start_objects(&objects).await.unwrap();

    // Positive: the chain thanks through a model call, at the chain's own endpoint.
    reply(&mock, "classifier", "positive");
    let a = gw
        .post(
            "/v1/chains/triage/chat/completions",
            &ask("I love this product"),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let body = a.json().unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "chain/triage");
    assert_eq!(content(&a), "mock reply: I love this product");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body.get("stackTrace").is_none(), "no trace unless asked");
    assert_eq!(a.route(), "chain=default/triage");
    let asked: Vec<String> = mock
        .requests()
        .iter()
        .filter_map(|r| r.model().map(str::to_owned))
        .collect();
    assert_eq!(asked, ["classifier", "demo-fast"]);

    let (run, calls) = run_and_calls(&gw, &a.request_id()).await;
    assert_eq!(run.chain.as_deref(), Some("default/triage"));
    assert_eq!(run.thread_root_id, None);
    assert_eq!(run.model_requested, "chain/triage");
    assert_eq!(run.endpoint, "/v1/chains/{name}/chat/completions");
    assert_eq!(run.workspace.as_deref(), Some("default/default"));
    assert_eq!(run.outcome, Outcome::Success);
    assert_eq!(run.status, 200);
    assert_eq!(calls.len(), 2);
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.chain.as_deref(), Some("default/triage"));
        assert_eq!(c.request_id, format!("{}:{}", a.request_id(), i + 1));
        assert_eq!(c.workspace, run.workspace);
        assert_eq!(c.outcome, Outcome::Success);
        assert!(c.usage.output_tokens > 0);
    }
    assert_eq!(calls[0].model_requested, "classifier");
    assert_eq!(calls[1].model_requested, "demo-fast");
    assert_eq!(run.usage, sum(&calls), "the run carries its calls' total");
    assert_eq!(
        body["usage"]["prompt_tokens"].as_u64(),
        Some(run.usage.input_tokens)
    );
    assert_eq!(
        body["usage"]["completion_tokens"].as_u64(),
        Some(run.usage.output_tokens)
    );

    // Negative, as `model: chain/triage` on the ordinary endpoint.
    reply(&mock, "classifier", "Negative.");
    let a = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "chain/triage", "messages": [{"role": "user", "content": "It broke"}]}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(content(&a), "We are sorry to hear that.");
    let (run, calls) = run_and_calls(&gw, &a.request_id()).await;
    assert_eq!(run.endpoint, "/v1/chat/completions");
    assert_eq!(calls.len(), 1);

    // An answer outside validConditions: the OpenAI error shape, naming the task.
    reply(&mock, "classifier", "maybe");
    let a = gw
        .post_with(
            "/v1/chains/triage/chat/completions",
            &ask("hmm"),
            &[("x-switchyard-stack-trace", "true")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 502, "{}", a.text);
    let e = a.json().unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().starts_with(
            "task \"classify\" failed: answer \"maybe\" is not one of validConditions (positive, negative)"
        ),
        "{e}"
    );
    assert_eq!(e["error"]["type"], "api_error");
    assert_eq!(e["error"]["code"], "chain_task_failed");
    assert_eq!(e["stackTrace"][0]["taskID"], "classify");
    let (run, _) = run_and_calls(&gw, &a.request_id()).await;
    assert_eq!(run.outcome, Outcome::UpstreamError);
    assert_eq!(run.status, 502);
    assert!(run.error.unwrap().contains("task \"classify\""));
}

#[tokio::test]
async fn stack_trace_lists_each_step_without_data_unless_debug() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(classification());
    let mut debug = classification();
    debug["metadata"]["name"] = json!("triage-debug");
    debug["spec"]["debug"] = json!(true);
    objects.push(debug);
    let gw = Gateway::start_objects(&objects).await.unwrap();

    reply(&mock, "classifier", "positive");
    let a = gw
        .post(
            "/v1/chains/triage/chat/completions?stackTrace=true",
            &ask("great"),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let trace = a.json().unwrap()["stackTrace"].clone();
    let units = trace.as_array().unwrap();
    assert_eq!(units.len(), 2);
    assert_eq!(units[0]["taskID"], "classify");
    assert_eq!(units[0]["taskHandler"], "condition_key");
    assert_eq!(units[0]["inputVar"], "previous_output");
    assert_eq!(units[0]["inputType"], "string");
    assert_eq!(units[0]["outputType"], "string");
    assert_eq!(units[0]["transition"], "positive");
    assert_eq!(units[0]["next"], "thank");
    assert!(units[0]["duration"].as_f64().unwrap() >= 0.0);
    assert!(units[0]["error"].is_null());
    assert!(units[0].get("input").is_none() && units[0].get("output").is_none());
    assert_eq!(units[1]["inputVar"], "input");
    assert_eq!(units[1]["transition"], "executed");
    assert_eq!(units[1]["next"], "end");

    reply(&mock, "classifier", "positive");
    let a = gw
        .post(
            "/v1/chat/completions?stackTrace=True",
            &json!({"model": "chain/triage-debug", "messages": [{"role": "user", "content": "great"}]}),
        )
        .await
        .unwrap();
    let units = a.json().unwrap()["stackTrace"].clone();
    assert_eq!(units[0]["input"], "Is this positive or negative? great");
    assert_eq!(units[0]["output"], "positive");
    assert_eq!(
        units[1]["output"]["messages"][2]["content"],
        "mock reply: great"
    );
}

#[tokio::test]
async fn numeric_score_with_in_range_also_streamed() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(task_chain_with(
        "score",
        json!({"tasks": [
            {"id": "rate", "handler": "parse_number", "promptTemplate": "Rate from 1 to 10: {{.input}}",
             "execute": {"model": "scorer"},
             "transition": {"branches": [
                {"operator": "in_range", "when": "8-10", "goto": "great"},
                {"operator": "in_range", "when": "4-7", "goto": "fine"},
                {"operator": "default", "goto": "poor"}]}},
            {"id": "great", "handler": "noop", "promptTemplate": "Great: {{.rate}}/10"},
            {"id": "fine", "handler": "noop", "promptTemplate": "Fine: {{.rate}}/10"},
            {"id": "poor", "handler": "noop", "promptTemplate": "Poor: {{.rate}}/10"}
        ]}),
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    for (answer, want) in [
        ("9", "Great: 9/10"),
        ("Score: 5", "Fine: 5/10"),
        ("1", "Poor: 1/10"),
    ] {
        reply(&mock, "scorer", answer);
        let a = gw
            .post("/v1/chains/score/chat/completions", &ask("a decent essay"))
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(content(&a), want);
    }

    reply(&mock, "scorer", "7");
    let a = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "chain/score", "stream": true, "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": "a decent essay"}]}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("content-type"), Some("text/event-stream"));
    let (chunks, done) = a.sse_data().unwrap();
    assert!(done, "ends with [DONE]");
    assert_eq!(openai_stream_text(&chunks), "Fine: 7/10");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    let usage = &chunks.last().unwrap()["usage"];
    let run = gw.record_of(&a.request_id()).await.unwrap();
    assert!(run.stream);
    assert_eq!(
        usage["prompt_tokens"].as_u64(),
        Some(run.usage.input_tokens)
    );
    assert!(run.usage.output_tokens > 0);
    assert!(run.ttft_ms.is_some());
}

#[tokio::test]
async fn hook_answer_renders_through_output_template() {
    let mock = mock().await;
    let hook = MockHook::start().await.unwrap();
    hook.respond(
        200,
        json!({"weather": "sunny", "temperature": 21, "city": "Paris"}),
    );
    let mut objects = base(&mock);
    objects.push(secret(
        "hook-token",
        &[("token", "Bearer s3cret-hook-token")],
    ));
    objects.push(task_chain_with(
        "weather",
        json!({
            "hooks": [{"name": "weather", "url": hook.url("/weather"), "timeout": "2s",
                       "headers": [{"name": "Authorization", "valueFrom": {"name": "hook-token", "key": "token"}}],
                       "properties": {"in": "query", "name": "units", "value": "metric"}}],
            "tasks": [{"id": "lookup", "handler": "hook",
                       "hook": {"name": "weather", "toolName": "current", "args": {"city": "{{.input}}"}},
                       "outputTemplate": "The weather in {{.city}} is {{.weather}} at {{.temperature}} degrees."}]
        }),
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let a = gw
        .post("/v1/chains/weather/chat/completions", &ask("Paris"))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(content(&a), "The weather in Paris is sunny at 21 degrees.");
    let got = hook.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].uri, "/weather?units=metric");
    assert_eq!(
        got[0].header("authorization"),
        Some("Bearer s3cret-hook-token")
    );
    assert_eq!(
        got[0].body,
        json!({"hook": "weather", "tool": "current", "chain": "default/weather", "task": "lookup",
               "input": {"messages": [{"role": "user", "content": "Paris"}]},
               "args": {"city": "Paris"}})
    );
    let (run, calls) = run_and_calls(&gw, &a.request_id()).await;
    assert!(calls.is_empty(), "a hook is not a model call");
    assert_eq!(run.outcome, Outcome::Success);
    assert!(run.usage.is_zero());

    // A failing hook: the task is named, the credential it echoed is not.
    hook.respond(
        500,
        json!({"error": "backend down for Bearer s3cret-hook-token"}),
    );
    let a = gw
        .post("/v1/chains/weather/chat/completions", &ask("Oslo"))
        .await
        .unwrap();
    assert_eq!(a.status, 502, "{}", a.text);
    let m = a.json().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        m,
        "task \"lookup\" failed: hook \"weather\" answered 500: backend down for [REDACTED]"
    );
    // The failed run's record is in the store: then the credential is checked against it all.
    gw.record_of(&a.request_id()).await.unwrap();
    let all = std::fs::read_to_string(gw.records_path()).unwrap();
    assert!(!all.contains("s3cret"), "no credential in any record");
}

#[tokio::test]
async fn model_execution_falls_back_through_a_router_policy() {
    let mock = mock().await;
    let mut objects = base(&mock);
    // Calls made by model_execution steps go to a failing target first, then the fallback.
    objects.push(router_policy(
        "chain-steps",
        10,
        json!({"stepType": "model_execution"}),
        to_provider("p", Some("demo-fast+status=503")),
        vec![to_provider("p", Some("demo-smart"))],
    ));
    objects.push(task_chain_with(
        "answer",
        json!({"tasks": [{"id": "reply", "handler": "model_execution", "execute": {"model": "demo-fast"}}]}),
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let a = gw
        .post("/v1/chains/answer/chat/completions", &ask("hello there"))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(content(&a), "mock reply: hello there");
    let (run, calls) = run_and_calls(&gw, &a.request_id()).await;
    assert_eq!(run.outcome, Outcome::Success);
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    let route = call.route.clone().unwrap();
    assert_eq!(route.source, "policy");
    assert_eq!(route.rule.as_deref(), Some("default/chain-steps"));
    assert_eq!(call.model_served.as_deref(), Some("demo-smart"));
    let first = call.attempts.first().unwrap();
    let last = call.attempts.last().unwrap();
    assert_eq!(first.status, Some(503));
    assert_eq!(last.status, Some(200));
    assert_eq!(last.model, "demo-smart");

    // The same model asked for directly is no chain step: the policy does not apply.
    let direct = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .unwrap();
    assert_eq!(direct.status, 200);
    assert!(
        direct.route().starts_with("muxrule=default/all"),
        "{}",
        direct.route()
    );
}

#[tokio::test]
async fn explicit_target_and_model_list() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(task_chain_with(
        "pinned",
        json!({"tasks": [
            {"id": "first", "handler": "raw_string", "promptTemplate": "say {{.input}}",
             "execute": {"target": {"providerRef": "p", "model": "demo-smart"}},
             "transition": {"branches": [{"operator": "default", "goto": "second"}]}},
            {"id": "second", "handler": "model_execution", "inputVar": "input",
             "execute": {"models": ["broken+status=500", "demo-fast"]}}
        ]}),
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let a = gw
        .post("/v1/chains/pinned/chat/completions", &ask("cheese"))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(content(&a), "mock reply: cheese");
    let (_, calls) = run_and_calls(&gw, &a.request_id()).await;
    assert_eq!(calls.len(), 2);
    let route = calls[0].route.clone().unwrap();
    assert_eq!(route.source, "chain");
    assert_eq!(route.rule.as_deref(), Some("default/pinned"));
    assert_eq!(calls[0].model_served.as_deref(), Some("demo-smart"));
    // The second call tried its models in order: one record, every attempt in it.
    assert_eq!(calls[1].model_served.as_deref(), Some("demo-fast"));
    assert_eq!(calls[1].attempts.first().unwrap().status, Some(500));
}

#[tokio::test]
async fn chains_are_found_in_the_workspace_namespace_only() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(classification());
    let gw = Gateway::start_objects(&objects).await.unwrap();
    for (path, body) in [
        ("/v1/chains/nope/chat/completions", ask("x")),
        ("/v1/chains/other/triage/chat/completions", ask("x")),
        (
            "/v1/chat/completions",
            json!({"model": "chain/nope", "messages": [{"role": "user", "content": "x"}]}),
        ),
    ] {
        let a = gw.post(path, &body).await.unwrap();
        assert_eq!(a.status, 404, "{path}: {}", a.text);
        let e = a.json().unwrap();
        assert_eq!(e["error"]["code"], "chain_not_found", "{path}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
    for path in [
        "/v1/chains/default/triage/chat/completions",
        "/v1/chains/default%2Ftriage/chat/completions",
    ] {
        reply(&mock, "classifier", "negative");
        let a = gw.post(path, &ask("bad")).await.unwrap();
        assert_eq!(a.status, 200, "{path}: {}", a.text);
    }
    let a = gw
        .post(
            "/v1/chains/triage/chat/completions",
            &json!({"messages": []}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 400);
    assert_eq!(a.json().unwrap()["error"]["param"], "messages");
    let models = gw.get("/v1/models", &[]).await.unwrap();
    assert!(models.text.contains("\"chain/triage\""));
}

#[tokio::test]
async fn operator_rolls_runs_up_into_task_chain_status() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(classification());
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let mut ids = Vec::new();
    for answer in ["positive", "negative", "unsure"] {
        reply(&mock, "classifier", answer);
        let a = gw
            .post("/v1/chains/triage/chat/completions", &ask("feedback"))
            .await
            .unwrap();
        ids.push(a.request_id());
    }
    for id in &ids {
        gw.record_of(id).await.unwrap();
    }
    let records = gw.unique_records().await.unwrap();
    let runs: Vec<&Interception> = records.iter().filter(|r| r.is_chain_run()).collect();
    assert_eq!(runs.len(), 3);
    let calls: Vec<Interception> = records
        .iter()
        .filter(|r| r.thread_root_id.is_some())
        .cloned()
        .collect();
    assert_eq!(calls.len(), 4, "2 + 1 + 1 model calls");

    let path = std::env::temp_dir().join(format!("switchyard-chains-{}.db", uuid::Uuid::new_v4()));
    let store = switchyard_operator::store::Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.insert(&records).await.unwrap();
    let counters =
        switchyard_operator::aggregate::counters(&store, &["default/default".to_owned()])
            .await
            .unwrap();
    let latest = runs.iter().map(|r| r.started_at).max().unwrap();
    // Workspace tokens count each model call once (the runs carry totals but count none).
    let ws = &counters.workspaces["default/default"].usage.totals;
    assert_eq!(ws.input_tokens, sum(&calls).input_tokens);
    assert_eq!(ws.output_tokens, sum(&calls).output_tokens);
    assert_eq!(ws.requests, 7, "3 runs and 4 calls");

    let mut inventory = switchyard_crds::compile::Inventory::default();
    let text = switchyard_tests::harness::manifests::documents(&objects);
    switchyard_crds::manifest::add_yaml(&mut inventory, "all.yaml", &text).unwrap();
    let compiled = switchyard_crds::compile::compile(&inventory);
    let diag = compiled
        .diagnostics
        .iter()
        .find(|d| d.object.kind == switchyard_crds::compile::Kind::TaskChain)
        .unwrap();
    let status =
        switchyard_operator::status::task_chain(diag, None, &counters, jiff::Timestamp::now());
    assert_eq!(status.runs, 3);
    assert_eq!(status.failures, 1);
    assert_eq!(
        status.last_run_at.unwrap().0.as_second(),
        latest.as_second()
    );
    store.close().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_caller_who_leaves_cancels_the_run_and_its_call() {
    let mock = mock().await;
    let mut objects = base(&mock);
    objects.push(task_chain_with(
        "slow",
        json!({"tasks": [
            {"id": "quick", "handler": "model_execution", "execute": {"model": "demo-fast"},
             "transition": {"branches": [{"operator": "default", "goto": "long"}]}},
            {"id": "long", "handler": "model_execution", "execute": {"model": "demo-fast+latency=5000"}}
        ]}),
    ));
    let gw = Gateway::start_objects(&objects).await.unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let sent = gw
        .http_client()
        .post(gw.url("/v1/chains/slow/chat/completions"))
        .header("x-request-id", &id)
        .timeout(std::time::Duration::from_millis(800))
        .json(&ask("take your time"))
        .send()
        .await;
    assert!(sent.is_err(), "the caller gave up");
    let cancelled = mock
        .wait_for_cancelled(1, std::time::Duration::from_secs(5))
        .await;
    assert_eq!(cancelled.len(), 1, "the upstream call was cancelled too");
    let (run, calls) = run_and_calls(&gw, &id).await;
    assert_eq!(run.outcome, Outcome::Cancelled);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].outcome, Outcome::Success);
    assert_eq!(calls[1].outcome, Outcome::Cancelled);
    assert_eq!(
        run.usage, calls[0].usage,
        "what the run spent before it was left"
    );
}
