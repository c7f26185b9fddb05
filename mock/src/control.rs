//! The control API under `/_mock/`: recorded requests, scripts, cancellations.

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::answer::{Dialect, json_response, response};
use super::behavior::ScriptRule;
use super::{State, lock};

fn no_content() -> Response<Body> {
    response(StatusCode::NO_CONTENT, 0, "application/json", Body::empty())
}

pub(crate) fn handle(state: &State, method: &Method, path: &str, body: &[u8]) -> Response<Body> {
    match (method.as_str(), path) {
        ("GET", "/_mock/health") => json_response(StatusCode::OK, 0, &json!({ "status": "ok" })),
        ("GET", "/_mock/requests") => {
            let list: Vec<Value> = state
                .requests()
                .into_iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "method": r.method,
                        "path": r.path,
                        "query": r.query,
                        "headers": r.headers,
                        "body": r.body,
                    })
                })
                .collect();
            json_response(StatusCode::OK, 0, &Value::Array(list))
        }
        ("DELETE", "/_mock/requests") => {
            lock(&state.log).clear();
            no_content()
        }
        ("GET", "/_mock/script") => {
            let list: Vec<Value> = state
                .rules()
                .iter()
                .map(|rule| {
                    json!({
                        "id": rule.id,
                        "match": rule.spec.matcher,
                        "times": rule.spec.times,
                        "remaining": rule.remaining(),
                        "behavior": rule.spec.behavior,
                    })
                })
                .collect();
            json_response(StatusCode::OK, 0, &Value::Array(list))
        }
        ("POST", "/_mock/script") => match serde_json::from_slice::<ScriptRule>(body) {
            Ok(rule) => {
                let id = state.add_rule(rule);
                json_response(StatusCode::OK, 0, &json!({ "id": id }))
            }
            Err(error) => {
                Dialect::OpenAi.invalid(0, None, &format!("invalid script rule: {error}"))
            }
        },
        ("DELETE", "/_mock/script") => {
            state.clear_rules();
            no_content()
        }
        ("GET", "/_mock/cancelled") => {
            let list: Vec<Value> = lock(&state.cancelled)
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "path": c.path,
                        "phase": c.phase,
                        "frames_sent": c.frames_sent,
                        "elapsed_ms": c.elapsed.as_secs_f64() * 1000.0,
                    })
                })
                .collect();
            json_response(StatusCode::OK, 0, &Value::Array(list))
        }
        ("DELETE", "/_mock/cancelled") => {
            lock(&state.cancelled).clear();
            no_content()
        }
        ("POST", "/_mock/reset") => {
            lock(&state.log).clear();
            lock(&state.cancelled).clear();
            lock(&state.cache_seen).clear();
            lock(&state.responses).clear();
            state.clear_rules();
            no_content()
        }
        _ => Dialect::OpenAi.error(
            0,
            404,
            &format!("mock upstream: no control route {method} {path}"),
        ),
    }
}
