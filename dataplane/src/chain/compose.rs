//! Compose strategies (seed 002 `ComposeTask`): combine a task's output with another variable
//! (`compose.withVar`). The result is stored as `ID_composed` and becomes `previous_output`.

use switchyard_crds::task_chain::ComposeStrategy;

use super::{ChatHistory, TaskError, Value};

/// The strategy used when none is given: `merge_chat_histories` for two chat histories,
/// `append_string_to_chat_history` for a chat history and anything else that is not one,
/// `override` otherwise.
pub fn default_strategy(output: &Value, with: &Value) -> ComposeStrategy {
    match (output, with) {
        (Value::Chat(_), Value::Chat(_)) => ComposeStrategy::MergeChatHistories,
        (Value::Chat(_), Value::Text(_)) | (Value::Text(_), Value::Chat(_)) => {
            ComposeStrategy::AppendStringToChatHistory
        }
        _ => ComposeStrategy::Override,
    }
}

/// Combines `output` (the task's) with `with` (the `withVar` variable).
///
/// - `override`: the output; when both are JSON objects, `with`'s fields overlaid by the
///   output's.
/// - `merge_chat_histories`: both chat histories, `with`'s messages first, then the output's.
/// - `append_string_to_chat_history`: one chat history and one other value; the other value's
///   text is appended to the history as a `user` message.
pub fn compose(
    strategy: Option<ComposeStrategy>,
    output: &Value,
    with: &Value,
) -> Result<Value, TaskError> {
    let strategy = strategy.unwrap_or_else(|| default_strategy(output, with));
    match strategy {
        ComposeStrategy::Override => Ok(match (output, with) {
            (
                Value::Json(serde_json::Value::Object(o)),
                Value::Json(serde_json::Value::Object(w)),
            ) => {
                let mut merged = w.clone();
                for (k, v) in o {
                    merged.insert(k.clone(), v.clone());
                }
                Value::Json(serde_json::Value::Object(merged))
            }
            _ => output.clone(),
        }),
        ComposeStrategy::MergeChatHistories => match (output, with) {
            (Value::Chat(o), Value::Chat(w)) => {
                let mut messages = w.messages.clone();
                messages.extend(o.messages.iter().cloned());
                Ok(Value::Chat(ChatHistory::new(messages)?))
            }
            _ => Err(TaskError::Input(format!(
                "compose merge_chat_histories needs two chat histories, got {} and {}",
                output.type_name(),
                with.type_name()
            ))),
        },
        ComposeStrategy::AppendStringToChatHistory => {
            let (history, text) = match (output, with) {
                (Value::Chat(_), Value::Chat(_)) => {
                    return Err(TaskError::Input(
                        "compose append_string_to_chat_history got two chat histories; use merge_chat_histories".into(),
                    ));
                }
                (Value::Chat(h), other) | (other, Value::Chat(h)) => (h, other.text()),
                _ => {
                    return Err(TaskError::Input(format!(
                        "compose append_string_to_chat_history needs a chat history, got {} and {}",
                        output.type_name(),
                        with.type_name()
                    )));
                }
            };
            let mut h = history.clone();
            h.push("user", &text)?;
            Ok(Value::Chat(h))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chat(texts: &[&str]) -> Value {
        Value::Chat(ChatHistory {
            messages: texts
                .iter()
                .map(|t| json!({"role": "user", "content": t}))
                .collect(),
        })
    }

    #[test]
    fn override_keeps_the_output_and_overlays_objects() {
        let out = compose(
            Some(ComposeStrategy::Override),
            &Value::Text("new".into()),
            &Value::Text("old".into()),
        )
        .unwrap();
        assert_eq!(out, Value::Text("new".into()));
        let out = compose(
            None,
            &Value::Json(json!({"a": 1, "b": 2})),
            &Value::Json(json!({"b": 0, "c": 3})),
        )
        .unwrap();
        assert_eq!(out, Value::Json(json!({"a": 1, "b": 2, "c": 3})));
    }

    #[test]
    fn merge_puts_the_variable_first() {
        let out = compose(None, &chat(&["reply"]), &chat(&["question"])).unwrap();
        assert_eq!(out, chat(&["question", "reply"]));
        let e = compose(
            Some(ComposeStrategy::MergeChatHistories),
            &Value::Text("x".into()),
            &chat(&["q"]),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("needs two chat histories, got string and chat_history")
        );
    }

    #[test]
    fn append_adds_a_user_message_either_way_round() {
        let want = chat(&["question", "search results: 3"]);
        assert_eq!(
            compose(
                None,
                &Value::Text("search results: 3".into()),
                &chat(&["question"])
            )
            .unwrap(),
            want
        );
        assert_eq!(
            compose(
                Some(ComposeStrategy::AppendStringToChatHistory),
                &chat(&["question"]),
                &Value::Text("search results: 3".into())
            )
            .unwrap(),
            want
        );
        assert_eq!(
            compose(
                Some(ComposeStrategy::AppendStringToChatHistory),
                &Value::Int(3),
                &chat(&["q"])
            )
            .unwrap(),
            chat(&["q", "3"])
        );
        assert!(
            compose(
                Some(ComposeStrategy::AppendStringToChatHistory),
                &Value::Int(1),
                &Value::Int(2)
            )
            .is_err()
        );
    }
}
