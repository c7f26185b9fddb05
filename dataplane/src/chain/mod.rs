//! The TaskChain engine: runs a compiled [`TaskChainSnapshot`] for one chat request and serves
//! it as an OpenAI-compatible model (`POST /v1/chains/{name}/chat/completions`, or
//! `model: "chain/NAME"` on `/v1/chat/completions`).
//!
//! - [`template`]: the template language of prompts, prints, output templates and hook args;
//! - [`history`]: chat histories and `tokenLimit` trimming;
//! - [`handlers`]: what each handler does with its input;
//! - [`transition`]: branch operators and the choice of the next task;
//! - [`compose`]: compose strategies;
//! - [`hooks`]: HTTP calls to a chain's remote hooks;
//! - [`run`]: the execution loop (retries, timeouts, onFailure, step limit, captured state);
//! - [`serve`]: the HTTP side (request in, answer or stream out, the run's interception).
//!
//! The compiler (`switchyard_crds::compile`) has already checked ids, gotos, operators and
//! per-handler requirements; the engine trusts those and checks only what depends on data.

pub mod compose;
pub mod handlers;
pub mod history;
pub mod hooks;
pub mod run;
pub mod serve;
pub mod template;
pub mod transition;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::errors::ApiError;
pub use history::ChatHistory;
use template::{Scope, TemplateError, Val};

/// Prefix of chain models on `/v1/chat/completions` (`chain/NAME`).
pub use switchyard_routing::models::CHAIN_MODEL_PREFIX as MODEL_PREFIX;

/// The value of a chain variable (a task's output, the input).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// An integer (`parse_number`).
    Int(i64),
    /// A number (`parse_score`).
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// JSON (hook output, `parse_key_value`).
    Json(Json),
    /// An embedding.
    Vector(Vec<f64>),
    /// A chat history (the request's messages, `model_execution` output).
    Chat(ChatHistory),
    /// An OpenAI chat completion (`convert_to_openai_chat_response`).
    ChatResponse(Json),
}

impl Value {
    /// The type name shown in stack traces (seed 002 data types).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Text(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Json(_) => "json",
            Value::Vector(_) => "vector",
            Value::Chat(_) => "chat_history",
            Value::ChatResponse(_) => "openai_chat_response",
        }
    }

    /// The value as text: what a handler that reads text (a prompt) sees. A chat history is its
    /// last message's text; a chat completion its first choice's content; JSON compact.
    pub fn text(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => template::float_text(*f),
            Value::Bool(b) => b.to_string(),
            Value::Json(Json::String(s)) => s.clone(),
            Value::Json(j) => j.to_string(),
            Value::Vector(v) => json!(v).to_string(),
            Value::Chat(h) => h.last_text(),
            Value::ChatResponse(r) => r
                .pointer("/choices/0/message")
                .map(crate::classify::message_text)
                .unwrap_or_default(),
        }
    }

    /// The value as JSON (hook bodies, debug stack traces): a chat history is
    /// `{"messages": […]}`.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Text(s) => Json::String(s.clone()),
            Value::Int(i) => json!(i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Value::Bool(b) => Json::Bool(*b),
            Value::Json(j) | Value::ChatResponse(j) => j.clone(),
            Value::Vector(v) => json!(v),
            Value::Chat(h) => json!({"messages": h.messages}),
        }
    }

    /// The value as a template sees it.
    pub fn view(&self) -> Val<'_> {
        match self {
            Value::Json(j) | Value::ChatResponse(j) => Val::borrowed(j),
            Value::Chat(h) => Val::Chat(&h.messages),
            other => Val::owned(other.to_json()),
        }
    }

    /// The value as a chat history: a history as is, anything else as one user message.
    pub fn into_chat(self) -> ChatHistory {
        match self {
            Value::Chat(h) => h,
            Value::ChatResponse(r) => {
                let mut h = ChatHistory::default();
                if let Some(m) = r.pointer("/choices/0/message") {
                    h.messages.push(m.clone());
                }
                h
            }
            other => ChatHistory::user(&other.text()),
        }
    }
}

/// The variables of a run: `input`, `previous_output`, each task id that ran, and
/// `ID_composed` for tasks with `compose`.
#[derive(Clone, Debug, Default)]
pub struct Vars(BTreeMap<String, Value>);

impl Vars {
    /// Variables at the start of a run: `input` (also the first `previous_output`).
    pub fn new(input: Value) -> Self {
        let mut m = BTreeMap::new();
        m.insert("previous_output".to_owned(), input.clone());
        m.insert("input".to_owned(), input);
        Vars(m)
    }

    /// A variable.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Sets a variable.
    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        self.0.insert(name.into(), value);
    }
}

impl Scope for Vars {
    fn lookup(&self, name: &str) -> Option<Val<'_>> {
        self.0.get(name).map(Value::view)
    }

    fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// Why a task failed (one attempt).
#[derive(Clone, Debug, PartialEq)]
pub enum TaskError {
    /// A model call failed (after the route's fallbacks), with the gateway's error.
    Model(ApiError),
    /// A hook call failed.
    Hook(String),
    /// A template did not parse or render.
    Template {
        /// Field: promptTemplate, print, outputTemplate, hook.args.NAME.
        field: String,
        /// The error.
        error: TemplateError,
    },
    /// The answer (or input) could not be interpreted by the handler.
    Parse(String),
    /// `raise_error`.
    Raised(String),
    /// The attempt took longer than the task's `timeout`.
    Timeout(Duration),
    /// The input does not fit the handler, or a bound was exceeded.
    Input(String),
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskError::Model(e) => f.write_str(&e.message),
            TaskError::Hook(m)
            | TaskError::Parse(m)
            | TaskError::Raised(m)
            | TaskError::Input(m) => f.write_str(m),
            TaskError::Template { field, error } => write!(f, "{field}: template error at {error}"),
            TaskError::Timeout(d) => write!(f, "no result within the task timeout of {d:?}"),
        }
    }
}

impl std::error::Error for TaskError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_text_json_and_chat() {
        assert_eq!(Value::Float(7.0).text(), "7");
        assert_eq!(Value::Float(7.25).text(), "7.25");
        assert_eq!(Value::Json(json!({"a": 1})).text(), "{\"a\":1}");
        let h = ChatHistory::user("hello");
        assert_eq!(Value::Chat(h.clone()).text(), "hello");
        assert_eq!(
            Value::Chat(h.clone()).to_json(),
            json!({"messages": [{"role": "user", "content": "hello"}]})
        );
        assert_eq!(Value::Text("x".into()).into_chat(), ChatHistory::user("x"));
        let r = json!({"choices": [{"message": {"role": "assistant", "content": "hi"}}]});
        assert_eq!(Value::ChatResponse(r.clone()).text(), "hi");
        assert_eq!(Value::ChatResponse(r).into_chat().last_text(), "hi");
    }

    #[test]
    fn vars_render_in_templates() {
        let mut v = Vars::new(Value::Chat(ChatHistory::user("I love it")));
        v.set("score", Value::Float(8.5));
        v.set("hook", Value::Json(json!({"status": "ok"})));
        let out = template::render(
            "{{.input}} / {{.previous_output}} / {{.score}} / {{.hook.status}}",
            Val::Scope(&v),
        )
        .unwrap();
        assert_eq!(out, "I love it / I love it / 8.5 / ok");
    }
}
