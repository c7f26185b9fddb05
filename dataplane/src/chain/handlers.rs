//! What each handler does with its input (docs/dataplane-api.md, "TaskChains", has the table).
//!
//! Handlers that read text (`condition_key`, `parse_number`, `parse_score`, `parse_range`,
//! `raw_string`, `parse_key_value`) ask a model when the task has `execute` (a model, models or
//! a target): the task's input text is the user prompt, `systemInstruction` the system prompt,
//! and they interpret the answer. Without `execute` they interpret the input text itself (for
//! example the output of an earlier `model_execution`).
//!
//! Model, embedding and hook calls go through [`Calls`], so the engine is tested without a
//! network and served through the gateway's normal routing path.

use std::collections::BTreeMap;
use std::future::Future;

use serde_json::{Map, Value as Json, json};
use switchyard_crds::snapshot::{HookSnapshot, TaskChainSnapshot};
use switchyard_crds::task_chain::{Handler, TaskSpec};

use super::template::{self, Val};
use super::{ChatHistory, TaskError, Value, Vars};

/// A chat call a task makes (OpenAI chat body without `model`: `messages`, and `tools`,
/// `tool_choice`, `temperature`, `max_tokens` when set).
#[derive(Debug)]
pub struct ChatCall<'a> {
    /// The task (its `execute` names the models and target).
    pub task: &'a TaskSpec,
    /// The request body.
    pub body: Json,
}

/// An embedding call.
#[derive(Debug)]
pub struct EmbedCall<'a> {
    /// The task.
    pub task: &'a TaskSpec,
    /// Text to embed.
    pub text: String,
}

/// A hook call.
#[derive(Debug)]
pub struct HookCall<'a> {
    /// The hook.
    pub hook: &'a HookSnapshot,
    /// The calling task's id.
    pub task: &'a str,
    /// The tool asked for (`hook.toolName`, or `TOOL` of a model's call to `HOOK.TOOL`).
    pub tool: Option<&'a str>,
    /// The task's input as JSON (`null` for a model's tool call).
    pub input: Json,
    /// Arguments: the rendered `hook.args`, or a model's tool-call arguments.
    pub args: Map<String, Json>,
}

/// What tasks may call outside the engine.
pub trait Calls: Sync {
    /// A chat completion; returns the assistant message (OpenAI format).
    fn chat(&self, call: ChatCall<'_>) -> impl Future<Output = Result<Json, TaskError>> + Send;
    /// An embedding.
    fn embed(
        &self,
        call: EmbedCall<'_>,
    ) -> impl Future<Output = Result<Vec<f64>, TaskError>> + Send;
    /// A hook; returns its JSON answer (a non-JSON answer as a JSON string).
    fn hook(&self, call: HookCall<'_>) -> impl Future<Output = Result<Json, TaskError>> + Send;
}

/// What a run knows besides its variables.
#[derive(Debug)]
pub struct Context<'a> {
    /// The chain.
    pub chain: &'a TaskChainSnapshot,
    /// Model name answers carry (`chain/NAME`).
    pub model: String,
    /// Id of the run (used in response ids).
    pub run_id: String,
    /// The caller's `tools` (for `execute.passClientsTools`).
    pub client_tools: Vec<Json>,
    /// The caller's `tool_choice`.
    pub tool_choice: Option<Json>,
    /// Hooks offered to models anywhere in the chain (`execute.hooks`), by name: the tool calls
    /// `execute_tool_calls` runs.
    pub tool_hooks: BTreeMap<String, HookSnapshot>,
}

impl<'a> Context<'a> {
    /// The context of a run of `chain` for a request with these tools.
    pub fn new(
        chain: &'a TaskChainSnapshot,
        run_id: String,
        client_tools: Vec<Json>,
        tool_choice: Option<Json>,
    ) -> Self {
        let offered: std::collections::BTreeSet<&str> = chain
            .tasks
            .iter()
            .filter_map(|t| t.execute.as_ref())
            .flat_map(|e| e.hooks.iter().map(String::as_str))
            .collect();
        let tool_hooks = chain
            .hooks
            .iter()
            .filter(|h| offered.contains(h.name.as_str()))
            .map(|h| (h.name.clone(), h.clone()))
            .collect();
        Context {
            chain,
            model: format!(
                "{}{}",
                super::MODEL_PREFIX,
                switchyard_routing::table::name_of(&chain.key)
            ),
            run_id,
            client_tools,
            tool_choice,
            tool_hooks,
        }
    }
}

/// A handler's result: the output and the transition value branches are compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The task's output.
    pub value: Value,
    /// The transition value.
    pub eval: String,
}

impl Outcome {
    fn text(s: String) -> Self {
        Outcome {
            eval: s.clone(),
            value: Value::Text(s),
        }
    }
}

/// Whether the task calls a model for its text handlers.
fn has_model(task: &TaskSpec) -> bool {
    task.execute
        .as_ref()
        .is_some_and(|e| e.model.is_some() || !e.models.is_empty() || e.target.is_some())
}

/// Runs the handler of `task` on `input` (the prompt template, if any, already rendered).
pub async fn execute<C: Calls>(
    cx: &Context<'_>,
    calls: &C,
    task: &TaskSpec,
    input: Value,
    vars: &Vars,
) -> Result<Outcome, TaskError> {
    match task.handler {
        Handler::ConditionKey => {
            let answer = answer(cx, calls, task, &input).await?;
            condition_key(&answer, &task.valid_conditions).map(Outcome::text)
        }
        Handler::ParseNumber => {
            let n = parse_number(&answer(cx, calls, task, &input).await?)?;
            Ok(Outcome {
                value: Value::Int(n),
                eval: n.to_string(),
            })
        }
        Handler::ParseScore => {
            let f = parse_score(&answer(cx, calls, task, &input).await?)?;
            Ok(Outcome {
                value: Value::Float(f),
                eval: template::float_text(f),
            })
        }
        Handler::ParseRange => {
            parse_range(&answer(cx, calls, task, &input).await?).map(Outcome::text)
        }
        Handler::RawString => answer(cx, calls, task, &input).await.map(Outcome::text),
        Handler::ParseKeyValue => {
            if let (Value::Json(Json::Object(_)), false) = (&input, has_model(task)) {
                return Ok(Outcome {
                    value: input,
                    eval: "parsed".into(),
                });
            }
            let map = parse_key_value(&answer(cx, calls, task, &input).await?)?;
            Ok(Outcome {
                value: Value::Json(Json::Object(map)),
                eval: "parsed".into(),
            })
        }
        Handler::Embedding => {
            let text = input.text();
            if text.trim().is_empty() {
                return Err(TaskError::Input(
                    "nothing to embed: the input is empty".into(),
                ));
            }
            let v = calls.embed(EmbedCall { task, text }).await?;
            Ok(Outcome {
                value: Value::Vector(v),
                eval: "ok".into(),
            })
        }
        Handler::RaiseError => {
            let text = input.text();
            Err(TaskError::Raised(if text.trim().is_empty() {
                format!("task \"{}\" raised an error", task.id)
            } else {
                text
            }))
        }
        Handler::ModelExecution => model_execution(cx, calls, task, input).await,
        Handler::ExecuteToolCalls => execute_tool_calls(cx, calls, task, input).await,
        Handler::ParseTransition => {
            let eval = parse_transition(&input.text())?;
            Ok(Outcome { value: input, eval })
        }
        Handler::ConvertToOpenaiChatResponse => Ok(Outcome {
            value: Value::ChatResponse(chat_response(cx, &input)),
            eval: "converted".into(),
        }),
        Handler::Noop => Ok(Outcome {
            eval: input.text(),
            value: input,
        }),
        Handler::Hook => hook(cx, calls, task, input, vars).await,
    }
}

/// The text a text handler interprets: the model's answer (trimmed) with `execute`, else the
/// input's text.
async fn answer<C: Calls>(
    cx: &Context<'_>,
    calls: &C,
    task: &TaskSpec,
    input: &Value,
) -> Result<String, TaskError> {
    let prompt = input.text();
    if !has_model(task) {
        return Ok(prompt);
    }
    if prompt.trim().is_empty() {
        return Err(TaskError::Input(
            "the prompt is empty (set promptTemplate, or give the task a non-empty input)".into(),
        ));
    }
    let mut history = ChatHistory::user(&prompt);
    if let Some(s) = &task.system_instruction {
        history.ensure_system(s);
    }
    history.trim_to(cx.chain.token_limit)?;
    let body = model_body(task, history.messages, Vec::new(), None);
    let message = calls.chat(ChatCall { task, body }).await?;
    Ok(crate::classify::message_text(&message).trim().to_owned())
}

fn model_body(
    task: &TaskSpec,
    messages: Vec<Json>,
    tools: Vec<Json>,
    choice: Option<Json>,
) -> Json {
    let mut body = json!({ "messages": messages });
    if let Some(e) = &task.execute {
        if let Some(t) = e.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = e.max_tokens {
            body["max_tokens"] = json!(m);
        }
    }
    if !tools.is_empty() {
        body["tools"] = Json::Array(tools);
        if let Some(c) = choice {
            body["tool_choice"] = c;
        }
    }
    body
}

/// The answer as one of the valid conditions: exact, else case-insensitive after trimming
/// quotes and a final `.`/`!`. The output is the condition as declared.
pub fn condition_key(answer: &str, valid: &[String]) -> Result<String, TaskError> {
    let cleaned = answer
        .trim()
        .trim_matches(|c| matches!(c, '"' | '\'' | '`' | '*'))
        .trim_end_matches(['.', '!'])
        .trim();
    valid
        .iter()
        .find(|v| v.as_str() == cleaned)
        .or_else(|| valid.iter().find(|v| v.eq_ignore_ascii_case(cleaned)))
        .cloned()
        .ok_or_else(|| {
            TaskError::Parse(format!(
                "answer {:?} is not one of validConditions ({})",
                crate::classify::truncate(answer, 200),
                valid.join(", ")
            ))
        })
}

/// The first number in a text: the whole text when it is one, else the first number in it
/// (`"Score: 7/10"` is 7).
fn first_number(text: &str) -> Option<f64> {
    let t = text.trim().trim_matches(['"', '\'']).replace(' ', "");
    if let Ok(n) = t.parse::<f64>()
        && n.is_finite()
    {
        return Some(n);
    }
    let bytes = text.as_bytes();
    let start = (0..bytes.len()).find(|&i| {
        bytes[i].is_ascii_digit()
            || (matches!(bytes[i], b'-' | b'+') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    })?;
    let mut end = start + 1;
    let mut dot = false;
    while end < bytes.len() {
        match bytes[end] {
            b'0'..=b'9' => {}
            b'.' if !dot && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) => dot = true,
            _ => break,
        }
        end += 1;
    }
    text[start..end]
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
}

/// `parse_number`: an integer.
pub fn parse_number(text: &str) -> Result<i64, TaskError> {
    let n = first_number(text).ok_or_else(|| {
        TaskError::Parse(format!(
            "answer {:?} holds no number",
            crate::classify::truncate(text, 200)
        ))
    })?;
    if n.fract() != 0.0 || n.abs() > 9.0e15 {
        return Err(TaskError::Parse(format!(
            "answer {:?} is not an integer",
            crate::classify::truncate(text, 200)
        )));
    }
    Ok(n as i64)
}

/// `parse_score`: a number.
pub fn parse_score(text: &str) -> Result<f64, TaskError> {
    first_number(text).ok_or_else(|| {
        TaskError::Parse(format!(
            "answer {:?} holds no number",
            crate::classify::truncate(text, 200)
        ))
    })
}

/// `parse_range`: `min-max` (a single number `n` is `n-n`), normalised.
pub fn parse_range(text: &str) -> Result<String, TaskError> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '"' | '\''))
        .collect();
    let clean = clean.trim_end_matches('.');
    switchyard_crds::task_chain_range(clean)
        .map(|(lo, hi)| format!("{}-{}", template::float_text(lo), template::float_text(hi)))
        .ok_or_else(|| {
            TaskError::Parse(format!(
                "answer {:?} is not a range like 5-7 or a number",
                crate::classify::truncate(text, 200)
            ))
        })
}

/// `parse_key_value`: `key=value` or `key: value` pairs separated by `;`, new lines or `,`;
/// numbers and `true`/`false` become JSON numbers and booleans, quotes around a value go.
pub fn parse_key_value(text: &str) -> Result<Map<String, Json>, TaskError> {
    let sep = if text.contains(';') {
        ';'
    } else if text.contains('\n') {
        '\n'
    } else {
        ','
    };
    let mut out = Map::new();
    for pair in text.split(sep).map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .or_else(|| pair.split_once(':'))
            .ok_or_else(|| {
                TaskError::Parse(format!(
                    "{:?} is not a key=value pair",
                    crate::classify::truncate(pair, 200)
                ))
            })?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(TaskError::Parse(format!("{pair:?} has an empty key")));
        }
        let unquoted = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            Some(&v[1..v.len() - 1])
        } else {
            None
        };
        let value = match unquoted {
            Some(s) => Json::String(s.to_owned()),
            None => match v {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                _ => match v.parse::<i64>() {
                    Ok(i) => json!(i),
                    Err(_) => v
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map_or_else(|| Json::String(v.to_owned()), Json::Number),
                },
            },
        };
        out.insert(k.to_owned(), value);
    }
    Ok(out)
}

/// `parse_transition`: `/command args` gives `command`; text without a leading `/` gives
/// `pass`; empty text gives an empty value.
pub fn parse_transition(text: &str) -> Result<String, TaskError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(String::new());
    }
    let Some(rest) = t.strip_prefix('/') else {
        return Ok("pass".into());
    };
    let command = rest.split(char::is_whitespace).next().unwrap_or_default();
    if command.is_empty() {
        return Err(TaskError::Parse("empty command after /".into()));
    }
    Ok(command.to_owned())
}

/// The function tools a model_execution task offers: its hooks (one free-form tool per hook,
/// named after it) and, with `passClientsTools`, the caller's tools; minus `hideTools`.
fn tools_for(cx: &Context<'_>, task: &TaskSpec) -> Vec<Json> {
    let Some(e) = &task.execute else {
        return Vec::new();
    };
    let hidden = |name: &str| e.hide_tools.iter().any(|h| h == name);
    let mut tools: Vec<Json> = e
        .hooks
        .iter()
        .filter(|h| !hidden(h))
        .map(|h| {
            json!({"type": "function", "function": {
                "name": h,
                "description": format!("Calls the remote hook \"{h}\" with these arguments."),
                "parameters": {"type": "object", "additionalProperties": true},
            }})
        })
        .collect();
    if e.pass_clients_tools {
        tools.extend(
            cx.client_tools
                .iter()
                .filter(|t| {
                    !t.pointer("/function/name")
                        .and_then(Json::as_str)
                        .is_some_and(hidden)
                })
                .cloned(),
        );
    }
    tools
}

async fn model_execution<C: Calls>(
    cx: &Context<'_>,
    calls: &C,
    task: &TaskSpec,
    input: Value,
) -> Result<Outcome, TaskError> {
    let mut history = input.into_chat();
    if let Some(s) = &task.system_instruction {
        history.ensure_system(s);
    }
    history.trim_to(cx.chain.token_limit)?;
    let tools = tools_for(cx, task);
    let passes_client = task.execute.as_ref().is_some_and(|e| e.pass_clients_tools);
    let choice = cx.tool_choice.clone().filter(|_| passes_client);
    let body = model_body(task, history.messages.clone(), tools, choice);
    let message = calls.chat(ChatCall { task, body }).await?;
    let called = message
        .get("tool_calls")
        .and_then(Json::as_array)
        .is_some_and(|c| !c.is_empty());
    history.messages.push(message);
    history.check()?;
    Ok(Outcome {
        value: Value::Chat(history),
        eval: if called { "tool-call" } else { "executed" }.into(),
    })
}

async fn execute_tool_calls<C: Calls>(
    cx: &Context<'_>,
    calls: &C,
    task: &TaskSpec,
    input: Value,
) -> Result<Outcome, TaskError> {
    let Value::Chat(mut history) = input else {
        return Err(TaskError::Input(format!(
            "execute_tool_calls needs a chat history, got {}",
            input.type_name()
        )));
    };
    let tool_calls: Vec<Json> = history
        .messages
        .last()
        .and_then(|m| m.get("tool_calls"))
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if history.messages.is_empty() {
        return Ok(Outcome {
            value: Value::Chat(history),
            eval: "no_op".into(),
        });
    }
    let mut executed = false;
    for call in &tool_calls {
        let name = call
            .pointer("/function/name")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let (hook, tool) = match cx.tool_hooks.get(name) {
            Some(h) => (h, None),
            None => match name
                .split_once('.')
                .and_then(|(h, t)| cx.tool_hooks.get(h).map(|h| (h, Some(t))))
            {
                Some(found) => found,
                // Not a hook's tool (the caller's own): left for the caller.
                None => continue,
            },
        };
        let raw = call
            .pointer("/function/arguments")
            .and_then(Json::as_str)
            .filter(|a| !a.trim().is_empty())
            .unwrap_or("{}");
        let content = match serde_json::from_str::<Json>(raw) {
            Ok(Json::Object(args)) => match calls
                .hook(HookCall {
                    hook,
                    task: &task.id,
                    tool,
                    input: Json::Null,
                    args,
                })
                .await
            {
                Ok(Json::String(s)) => s,
                Ok(j) => j.to_string(),
                Err(e) => json!({"error": e.to_string()}).to_string(),
            },
            _ => json!({"error": "the tool-call arguments are not a JSON object"}).to_string(),
        };
        executed = true;
        history.messages.push(json!({
            "role": "tool",
            "tool_call_id": call.get("id").cloned().unwrap_or(Json::Null),
            "content": content,
        }));
        history.check()?;
    }
    Ok(Outcome {
        value: Value::Chat(history),
        eval: if executed {
            "tools_executed"
        } else {
            "no_calls_found"
        }
        .into(),
    })
}

/// An OpenAI chat completion carrying `input` (a chat history's last message, or the text of
/// anything else). `usage` is filled in when the run's answer is built.
pub fn chat_response(cx: &Context<'_>, input: &Value) -> Json {
    if let Value::ChatResponse(r) = input {
        return r.clone();
    }
    let mut message = json!({"role": "assistant", "content": input.text()});
    if let Value::Chat(h) = input
        && let Some(last) = h.messages.last()
        && let Some(calls) = last
            .get("tool_calls")
            .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    {
        message["tool_calls"] = calls.clone();
        if last.get("content").is_none_or(Json::is_null) {
            message["content"] = Json::Null;
        }
    }
    let finish = if message.get("tool_calls").is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    json!({
        "id": format!("chatcmpl-{}", cx.run_id),
        "object": "chat.completion",
        "created": jiff::Timestamp::now().as_second(),
        "model": cx.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    })
}

async fn hook<C: Calls>(
    cx: &Context<'_>,
    calls: &C,
    task: &TaskSpec,
    input: Value,
    vars: &Vars,
) -> Result<Outcome, TaskError> {
    let Some(call) = &task.hook else {
        return Err(TaskError::Input("handler hook needs hook".into()));
    };
    let hook = cx
        .chain
        .hooks
        .iter()
        .find(|h| h.name == call.name)
        .ok_or_else(|| TaskError::Input(format!("hook \"{}\" is not declared", call.name)))?;
    let mut args = Map::new();
    for (k, v) in &call.args {
        let rendered =
            template::render(v, Val::Scope(vars)).map_err(|error| TaskError::Template {
                field: format!("hook.args.{k}"),
                error,
            })?;
        args.insert(k.clone(), Json::String(rendered));
    }
    let out = calls
        .hook(HookCall {
            hook,
            task: &task.id,
            tool: call.tool_name.as_deref(),
            input: input.to_json(),
            args,
        })
        .await?;
    Ok(Outcome {
        value: match out {
            Json::String(s) => Value::Text(s),
            other => Value::Json(other),
        },
        eval: "ok".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_key_matches_declared_spelling() {
        let valid = vec!["positive".to_owned(), "negative".to_owned()];
        assert_eq!(condition_key("positive", &valid).unwrap(), "positive");
        assert_eq!(condition_key(" Positive.\n", &valid).unwrap(), "positive");
        assert_eq!(condition_key("\"NEGATIVE\"", &valid).unwrap(), "negative");
        let e = condition_key("neutral", &valid).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"neutral\" is not one of validConditions (positive, negative)"),
            "{e}"
        );
    }

    #[test]
    fn numbers_scores_ranges() {
        assert_eq!(parse_number("7").unwrap(), 7);
        assert_eq!(parse_number(" \"8\" ").unwrap(), 8);
        assert_eq!(parse_number("Score: 9/10").unwrap(), 9);
        assert_eq!(parse_number("-3").unwrap(), -3);
        assert!(
            parse_number("7.5")
                .unwrap_err()
                .to_string()
                .contains("not an integer")
        );
        assert!(
            parse_number("seven")
                .unwrap_err()
                .to_string()
                .contains("no number")
        );
        assert_eq!(parse_score("7.5").unwrap(), 7.5);
        assert_eq!(parse_score("about 0.25 I think").unwrap(), 0.25);
        assert!(parse_score("").is_err());
        assert_eq!(parse_range("5-7").unwrap(), "5-7");
        assert_eq!(parse_range(" 6 - 8 ").unwrap(), "6-8");
        assert_eq!(parse_range("4").unwrap(), "4-4");
        assert_eq!(parse_range("1.5-2").unwrap(), "1.5-2");
        assert!(parse_range("8-5").is_err(), "min above max");
        assert!(parse_range("a-b").is_err());
    }

    #[test]
    fn key_values() {
        let m =
            parse_key_value("name=Ada; age = 36; admin=true; ratio=0.5; motto='be kind'").unwrap();
        assert_eq!(
            Json::Object(m),
            json!({"name": "Ada", "age": 36, "admin": true, "ratio": 0.5, "motto": "be kind"})
        );
        let m = parse_key_value("a: 1\nb: two").unwrap();
        assert_eq!(Json::Object(m), json!({"a": 1, "b": "two"}));
        assert_eq!(parse_key_value("").unwrap().len(), 0);
        assert!(parse_key_value("just words").is_err());
        assert!(parse_key_value("=1").is_err());
    }

    #[test]
    fn transitions_from_commands() {
        assert_eq!(parse_transition("/search cats").unwrap(), "search");
        assert_eq!(parse_transition("  /help").unwrap(), "help");
        assert_eq!(parse_transition("hello").unwrap(), "pass");
        assert_eq!(parse_transition("").unwrap(), "");
        assert!(parse_transition("/ x").is_err());
    }
}
