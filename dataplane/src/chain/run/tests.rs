//! The execution loop against scripted calls: branching, retries, timeouts, onFailure, the
//! step limit, compose, templates, hooks, tool calls and the stack trace.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value as Json, json};
use switchyard_crds::snapshot::{HookSnapshot, TaskChainSnapshot};
use switchyard_crds::task_chain::TaskSpec;

use super::*;
use crate::chain::ChatHistory;
use crate::chain::handlers::{ChatCall, EmbedCall, HookCall};

/// A hook call seen: hook, tool, input, args.
type Hooked = (String, Option<String>, Json, Json);

/// Scripted calls: per task id, the answers its model calls get (text, or a full message);
/// hooks answer from a queue. Everything asked is kept.
#[derive(Default)]
struct Script {
    chat: Mutex<HashMap<String, VecDeque<Result<Json, TaskError>>>>,
    hooks: Mutex<VecDeque<Result<Json, TaskError>>>,
    delay: Option<Duration>,
    asked: Mutex<Vec<(String, Json)>>,
    hooked: Mutex<Vec<Hooked>>,
}

impl Script {
    fn answers(self, task: &str, answers: &[&str]) -> Self {
        self.chat.lock().unwrap().insert(
            task.into(),
            answers
                .iter()
                .map(|a| Ok(json!({"role": "assistant", "content": a})))
                .collect(),
        );
        self
    }

    fn message(self, task: &str, m: Json) -> Self {
        self.chat
            .lock()
            .unwrap()
            .entry(task.into())
            .or_default()
            .push_back(Ok(m));
        self
    }

    fn fail(self, task: &str, e: TaskError) -> Self {
        self.chat
            .lock()
            .unwrap()
            .entry(task.into())
            .or_default()
            .push_back(Err(e));
        self
    }

    fn hook_answer(self, a: Json) -> Self {
        self.hooks.lock().unwrap().push_back(Ok(a));
        self
    }

    fn asked(&self, task: &str) -> Vec<Json> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == task)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

impl Calls for Script {
    async fn chat(&self, call: ChatCall<'_>) -> Result<Json, TaskError> {
        self.asked
            .lock()
            .unwrap()
            .push((call.task.id.clone(), call.body.clone()));
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let next = self
            .chat
            .lock()
            .unwrap()
            .get_mut(&call.task.id)
            .and_then(VecDeque::pop_front);
        next.unwrap_or_else(|| Ok(json!({"role": "assistant", "content": "ok"})))
    }

    async fn embed(&self, call: EmbedCall<'_>) -> Result<Vec<f64>, TaskError> {
        Ok(vec![call.text.len() as f64, 0.5])
    }

    async fn hook(&self, call: HookCall<'_>) -> Result<Json, TaskError> {
        self.hooked.lock().unwrap().push((
            call.hook.name.clone(),
            call.tool.map(str::to_owned),
            call.input.clone(),
            Json::Object(call.args.clone()),
        ));
        self.hooks
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok(json!({"status": "ok"})))
    }
}

fn chain(tasks: Json) -> TaskChainSnapshot {
    let tasks: Vec<TaskSpec> = serde_json::from_value(tasks).unwrap();
    TaskChainSnapshot {
        key: "team/triage".into(),
        description: None,
        debug: false,
        token_limit: 0,
        max_steps: 100,
        hooks: vec![HookSnapshot {
            name: "search".into(),
            url: "http://127.0.0.1:1/hook".into(),
            timeout_ms: 1000,
            headers: vec![],
            properties: None,
        }],
        tasks,
        task_targets: BTreeMap::new(),
    }
}

fn input(text: &str) -> Value {
    Value::Chat(ChatHistory::user(text))
}

async fn go(c: &TaskChainSnapshot, s: &Script, text: &str) -> Result<Finished, Failed> {
    let cx = Context::new(c, "run-1".into(), vec![], None);
    run(&cx, s, input(text)).await
}

fn classification() -> TaskChainSnapshot {
    chain(json!([
        {"id": "classify", "handler": "condition_key", "validConditions": ["positive", "negative"],
         "promptTemplate": "Sentiment of: {{.input}}", "systemInstruction": "Answer positive or negative.",
         "execute": {"model": "demo-fast"},
         "transition": {"branches": [
            {"operator": "equals", "when": "positive", "goto": "thanks"},
            {"operator": "equals", "when": "negative", "goto": "sorry"}]}},
        {"id": "thanks", "handler": "noop", "promptTemplate": "Thanks! ({{.classify}}: {{.input}})"},
        {"id": "sorry", "handler": "noop", "promptTemplate": "Sorry to hear that."}
    ]))
}

#[tokio::test]
async fn classification_branches_on_condition_key() {
    let c = classification();
    let s = Script::default().answers("classify", &["Positive."]);
    let done = go(&c, &s, "I love it").await.unwrap();
    assert_eq!(
        done.output,
        Value::Text("Thanks! (positive: I love it)".into())
    );
    let asked = s.asked("classify");
    assert_eq!(
        asked[0]["messages"],
        json!([
            {"role": "system", "content": "Answer positive or negative."},
            {"role": "user", "content": "Sentiment of: I love it"}
        ])
    );
    let units = &done.trace.units;
    assert_eq!(units.len(), 2);
    assert_eq!(units[0].task_id, "classify");
    assert_eq!(units[0].transition, "positive");
    assert_eq!(units[0].next.as_deref(), Some("thanks"));
    assert_eq!(units[0].input_type, "string");
    assert_eq!(units[0].input, None, "no input without debug");
    assert_eq!(units[1].next.as_deref(), Some("end"));

    let s = Script::default().answers("classify", &["negative"]);
    let done = go(&c, &s, "meh").await.unwrap();
    assert_eq!(done.output, Value::Text("Sorry to hear that.".into()));

    let s = Script::default().answers("classify", &["neutral"]);
    let failed = go(&c, &s, "meh").await.unwrap_err();
    assert_eq!(failed.task, "classify");
    let e = failed.api_error();
    assert_eq!(e.kind, ErrorKind::Upstream);
    assert!(
        e.message.starts_with(
            "task \"classify\" failed: answer \"neutral\" is not one of validConditions"
        ),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn numeric_score_with_in_range() {
    let c = chain(json!([
        {"id": "score", "handler": "parse_score", "promptTemplate": "Rate 1-10: {{.input}}",
         "execute": {"model": "m"},
         "transition": {"branches": [
            {"operator": "in_range", "when": "0-4", "goto": "low"},
            {"operator": "in_range", "when": "4.5-10", "goto": "high"},
            {"operator": "default", "goto": "end"}]}},
        {"id": "low", "handler": "noop", "promptTemplate": "low {{.score}}"},
        {"id": "high", "handler": "noop", "promptTemplate": "high {{.score}}"}
    ]));
    for (answer, want) in [("7.5", "high 7.5"), ("Score: 2", "low 2"), ("4.2", "")] {
        let s = Script::default().answers("score", &[answer]);
        let done = go(&c, &s, "text").await.unwrap();
        let got = match &done.output {
            Value::Float(_) => String::new(),
            other => other.text(),
        };
        assert_eq!(got, want, "{answer}");
    }
}

#[tokio::test]
async fn retries_then_success_each_attempt_captured() {
    let c = chain(json!([
        {"id": "n", "handler": "parse_number", "execute": {"model": "m"}, "retryOnFailure": 2}
    ]));
    let s = Script::default().answers("n", &["seven", "eight", "8"]);
    let done = go(&c, &s, "how many?").await.unwrap();
    assert_eq!(done.output, Value::Int(8));
    let units = &done.trace.units;
    assert_eq!(units.len(), 3);
    assert!(units[0].error.as_ref().unwrap().error.contains("no number"));
    assert_eq!(units[1].attempt, 1);
    assert!(units[2].error.is_none());
    assert_eq!(units[2].output_type, Some("int"));

    let s = Script::default().answers("n", &["a", "b", "c"]);
    let failed = go(&c, &s, "how many?").await.unwrap_err();
    assert_eq!(failed.trace.units.len(), 3);
    assert!(
        failed
            .api_error()
            .message
            .starts_with("task \"n\" failed after 3 attempts: answer \"c\" holds no number"),
        "{:?}",
        failed.api_error()
    );
}

#[tokio::test]
async fn per_attempt_timeout_then_on_failure() {
    let c = chain(json!([
        {"id": "slow", "handler": "raw_string", "execute": {"model": "m"}, "timeout": "30ms",
         "retryOnFailure": 1, "transition": {"onFailure": "fallback", "branches": [{"operator": "default", "goto": "end"}]}},
        {"id": "fallback", "handler": "noop", "promptTemplate": "fallback for {{.input}}"}
    ]));
    let s = Script {
        delay: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let done = go(&c, &s, "q").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "each attempt is cut at 30 ms"
    );
    assert_eq!(done.output, Value::Text("fallback for q".into()));
    let units = &done.trace.units;
    assert_eq!(units.len(), 3, "two attempts of slow, then fallback");
    assert!(
        units[0]
            .error
            .as_ref()
            .unwrap()
            .error
            .contains("task timeout of 30ms")
    );
    assert_eq!(units[1].next.as_deref(), Some("fallback"));
    assert_eq!(s.asked("slow").len(), 2);
}

#[tokio::test]
async fn on_failure_and_raise_error() {
    let c = chain(json!([
        {"id": "check", "handler": "raise_error", "promptTemplate": "input contains prohibited content",
         "transition": {"onFailure": "handle"}},
        {"id": "handle", "handler": "noop", "promptTemplate": "handled"}
    ]));
    let done = go(&c, &Script::default(), "x").await.unwrap();
    assert_eq!(done.output, Value::Text("handled".into()));

    let c = chain(json!([
        {"id": "check", "handler": "raise_error", "promptTemplate": "input contains prohibited content"}
    ]));
    let failed = go(&c, &Script::default(), "x").await.unwrap_err();
    let e = failed.api_error();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert_eq!(e.code, Some("chain_error_raised"));
    assert_eq!(
        e.message,
        "task \"check\" failed: input contains prohibited content"
    );

    // onFailure: end finishes normally with the output so far.
    let c = chain(json!([
        {"id": "first", "handler": "noop", "promptTemplate": "kept",
         "transition": {"branches": [{"operator": "default", "goto": "boom"}]}},
        {"id": "boom", "handler": "raise_error", "transition": {"onFailure": "end"}}
    ]));
    let done = go(&c, &Script::default(), "x").await.unwrap();
    assert_eq!(done.output, Value::Text("kept".into()));
}

#[tokio::test]
async fn model_failure_keeps_its_status() {
    let c = chain(json!([{"id": "ask", "handler": "model_execution", "execute": {"model": "m"}}]));
    let s = Script::default().fail(
        "ask",
        TaskError::Model(
            ApiError::new(ErrorKind::Unavailable, "the circuit of provider/x is open")
                .code("circuit_open"),
        ),
    );
    let e = go(&c, &s, "x").await.unwrap_err().api_error();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert_eq!(e.code, Some("circuit_open"));
    assert_eq!(
        e.message,
        "task \"ask\" failed: the circuit of provider/x is open"
    );
}

#[tokio::test]
async fn step_limit_stops_loops() {
    let mut c = chain(json!([
        {"id": "again", "handler": "noop",
         "transition": {"branches": [
            {"operator": "equals", "when": "stop", "goto": "end"},
            {"operator": "default", "goto": "again"}]}}
    ]));
    c.max_steps = 5;
    let failed = go(&c, &Script::default(), "go on").await.unwrap_err();
    assert_eq!(failed.error, ChainError::StepLimit(5));
    assert_eq!(failed.trace.units.len(), 5);
    let e = failed.api_error();
    assert_eq!(e.code, Some("chain_step_limit"));
    assert!(e.message.contains("ran 5 tasks (maxSteps)") && e.message.contains("\"again\""));
}

#[tokio::test]
async fn no_matching_transition_names_the_task() {
    let c = chain(json!([
        {"id": "route", "handler": "parse_transition",
         "transition": {"branches": [{"operator": "equals", "when": "help", "goto": "end"}]}}
    ]));
    let failed = go(&c, &Script::default(), "/search cats")
        .await
        .unwrap_err();
    let e = failed.api_error();
    assert_eq!(e.code, Some("chain_no_transition"));
    assert!(
        e.message
            .starts_with("task \"route\": no matching transition for \"search\""),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn templates_errors_and_unset_variables() {
    let c = chain(json!([{"id": "t", "handler": "noop", "promptTemplate": "x {{.nope}}"}]));
    let e = go(&c, &Script::default(), "x")
        .await
        .unwrap_err()
        .api_error();
    assert_eq!(e.code, Some("chain_template_error"));
    assert!(
        e.message.starts_with("task \"t\" failed: promptTemplate: template error at line 1, column 5: no variable \"nope\""),
        "{}",
        e.message
    );
    let c = chain(json!([
        {"id": "a", "handler": "noop", "inputVar": "b"},
        {"id": "b", "handler": "noop"}
    ]));
    let e = go(&c, &Script::default(), "x")
        .await
        .unwrap_err()
        .api_error();
    assert!(
        e.message.contains("inputVar \"b\" is not set"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn compose_feeds_the_next_task() {
    let c = chain(json!([
        {"id": "context", "handler": "noop", "promptTemplate": "Known facts: the sky is blue.",
         "compose": {"withVar": "input"},
         "transition": {"branches": [{"operator": "default", "goto": "answer"}]}},
        {"id": "answer", "handler": "model_execution", "execute": {"model": "m"}, "systemInstruction": "Be brief."}
    ]));
    let s = Script::default().answers("answer", &["Blue."]);
    let done = go(&c, &s, "What colour is the sky?").await.unwrap();
    assert_eq!(
        s.asked("answer")[0]["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What colour is the sky?"},
            {"role": "user", "content": "Known facts: the sky is blue."}
        ])
    );
    assert_eq!(done.output.text(), "Blue.");
    let Value::Chat(h) = &done.output else {
        panic!("chat expected")
    };
    assert_eq!(h.messages.len(), 4);
}

#[tokio::test]
async fn hook_output_template_and_args() {
    let c = chain(json!([
        {"id": "lookup", "handler": "hook",
         "hook": {"name": "search", "toolName": "weather", "args": {"city": "{{.input}}", "unit": "C"}},
         "outputTemplate": "The weather is {{.weather}} with {{.temperature}} degrees.",
         "transition": {"branches": [
            {"operator": "contains", "when": "sunny", "goto": "end"},
            {"operator": "default", "goto": "other"}]}},
        {"id": "other", "handler": "noop", "promptTemplate": "not sunny"}
    ]));
    let s = Script::default().hook_answer(json!({"weather": "sunny", "temperature": 21}));
    let done = go(&c, &s, "Paris").await.unwrap();
    assert_eq!(
        done.output,
        Value::Text("The weather is sunny with 21 degrees.".into())
    );
    let hooked = s.hooked.lock().unwrap().clone();
    assert_eq!(hooked.len(), 1);
    assert_eq!(hooked[0].0, "search");
    assert_eq!(hooked[0].1.as_deref(), Some("weather"));
    assert_eq!(
        hooked[0].2,
        json!({"messages": [{"role": "user", "content": "Paris"}]})
    );
    assert_eq!(hooked[0].3, json!({"city": "Paris", "unit": "C"}));
}

#[tokio::test]
async fn tool_call_loop_through_hooks() {
    let c = chain(json!([
        {"id": "agent", "handler": "model_execution", "execute": {"model": "m", "hooks": ["search"]},
         "transition": {"branches": [
            {"operator": "equals", "when": "tool-call", "goto": "tools"},
            {"operator": "default", "goto": "end"}]}},
        {"id": "tools", "handler": "execute_tool_calls", "transition": {"branches": [{"operator": "default", "goto": "agent"}]}}
    ]));
    let s = Script::default()
        .message(
            "agent",
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{\"q\":\"cats\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "client_tool", "arguments": "{}"}}
            ]}),
        )
        .message("agent", json!({"role": "assistant", "content": "Cats are great."}))
        .hook_answer(json!({"results": ["cat facts"]}));
    let done = go(&c, &s, "tell me about cats").await.unwrap();
    assert_eq!(done.output.text(), "Cats are great.");
    let asked = s.asked("agent");
    assert_eq!(asked[0]["tools"][0]["function"]["name"], "search");
    let second = asked[1]["messages"].as_array().unwrap();
    assert_eq!(
        second.last().unwrap(),
        &json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"results\":[\"cat facts\"]}"})
    );
    assert_eq!(s.hooked.lock().unwrap()[0].3, json!({"q": "cats"}));
    let evals: Vec<&str> = done
        .trace
        .units
        .iter()
        .map(|u| u.transition.as_str())
        .collect();
    assert_eq!(evals, ["tool-call", "tools_executed", "executed"]);
}

#[tokio::test]
async fn token_limit_trims_history_before_the_call() {
    let mut c =
        chain(json!([{"id": "ask", "handler": "model_execution", "execute": {"model": "m"}}]));
    c.token_limit = 60;
    let long = "word ".repeat(200);
    let history = ChatHistory::new(vec![
        json!({"role": "system", "content": "sys"}),
        json!({"role": "user", "content": long}),
        json!({"role": "assistant", "content": "earlier answer"}),
        json!({"role": "user", "content": "latest question"}),
    ])
    .unwrap();
    let s = Script::default();
    let cx = Context::new(&c, "r".into(), vec![], None);
    run(&cx, &s, Value::Chat(history)).await.unwrap();
    let sent = s.asked("ask")[0]["messages"].clone();
    assert_eq!(
        sent,
        json!([
            {"role": "system", "content": "sys"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": "latest question"}
        ])
    );
}

#[tokio::test]
async fn debug_captures_input_output_and_print() {
    let mut c = chain(json!([
        {"id": "kv", "handler": "parse_key_value", "print": "parsed {{.kv.name}}",
         "transition": {"branches": [{"operator": "default", "goto": "emb"}]}},
        {"id": "emb", "handler": "embedding", "inputVar": "input", "execute": {"model": "e"},
         "transition": {"branches": [{"operator": "default", "goto": "out"}]}},
        {"id": "out", "handler": "convert_to_openai_chat_response", "inputVar": "kv"}
    ]));
    c.debug = true;
    let done = go(&c, &Script::default(), "name=Ada; age=36")
        .await
        .unwrap();
    let u = &done.trace.units;
    assert_eq!(
        u[0].input,
        Some(json!({"messages": [{"role": "user", "content": "name=Ada; age=36"}]}))
    );
    assert_eq!(u[0].output, Some(json!({"name": "Ada", "age": 36})));
    assert_eq!(u[0].print.as_deref(), Some("parsed Ada"));
    assert_eq!(u[1].output_type, Some("vector"));
    let Value::ChatResponse(r) = &done.output else {
        panic!("a chat response")
    };
    assert_eq!(r["model"], "chain/triage");
    assert_eq!(
        r["choices"][0]["message"]["content"],
        "{\"age\":36,\"name\":\"Ada\"}"
    );
    let text = serde_json::to_value(&u[0]).unwrap();
    assert_eq!(text["taskID"], "kv");
    assert_eq!(text["taskHandler"], "parse_key_value");
    assert!(text["duration"].is_number());
    assert!(text["error"].is_null());
}
