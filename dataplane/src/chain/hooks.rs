//! Calls to a chain's remote hooks: `POST` to the hook's URL with a JSON body
//!
//! ```json
//! {"hook": "tracker", "tool": "create_issue", "chain": "team-a/triage", "task": "file_bug",
//!  "input": <the task's input as JSON>, "args": {"title": "…"}}
//! ```
//!
//! with the hook's headers (values from Secrets, never logged nor echoed) and its
//! `properties` argument (`in: body` adds it to `args`, `query` to the URL, `header` as a
//! header). A 2xx JSON answer is the task's output (any other text: a string); the answer is
//! read up to [`MAX_HOOK_RESPONSE_BYTES`] within the hook's timeout. Calls obey the data
//! plane's egress policy like every upstream call.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value as Json, json};
use switchyard_crds::task_chain::InjectionLocation;

use super::TaskError;
use super::handlers::HookCall;
use crate::state::AppState;

/// Largest hook answer read.
pub const MAX_HOOK_RESPONSE_BYTES: usize = 1 << 20;

/// The JSON body sent to a hook.
pub fn body(chain: &str, call: &HookCall<'_>) -> Json {
    let mut args = call.args.clone();
    if let Some(p) = &call.hook.properties
        && p.in_ == InjectionLocation::Body
    {
        args.insert(p.name.clone(), Json::String(p.value.clone()));
    }
    json!({
        "hook": call.hook.name,
        "tool": call.tool,
        "chain": chain,
        "task": call.task,
        "input": call.input,
        "args": args,
    })
}

/// Calls a hook.
pub async fn call(state: &AppState, chain: &str, call: &HookCall<'_>) -> Result<Json, TaskError> {
    let hook = call.hook;
    let name = &hook.name;
    let secrets: Vec<String> = hook
        .headers
        .iter()
        .map(|h| h.value.expose().to_owned())
        .filter(|v| v.len() >= 4)
        .collect();
    let fail = |what: String| {
        TaskError::Hook(crate::proxy::scrub(
            &format!("hook \"{name}\" {what}"),
            &secrets,
        ))
    };
    let mut url =
        reqwest::Url::parse(&hook.url).map_err(|e| fail(format!("has an invalid URL: {e}")))?;
    state
        .settings
        .egress
        .check_url(&url)
        .map_err(|e| fail(format!("is not reachable under the egress policy: {e}")))?;
    if let Some(p) = &hook.properties
        && p.in_ == InjectionLocation::Query
    {
        url.query_pairs_mut().append_pair(&p.name, &p.value);
    }
    let mut req = state
        .client
        .get(None)
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body(chain, call).to_string());
    for h in &hook.headers {
        req = req.header(h.name.as_str(), h.value.expose());
    }
    if let Some(p) = &hook.properties
        && p.in_ == InjectionLocation::Header
    {
        req = req.header(p.name.as_str(), p.value.as_str());
    }
    let timeout = Duration::from_millis(hook.timeout_ms.max(1));
    let exchange = async {
        let resp = req
            .send()
            .await
            .map_err(|e| fail(format!("could not be called: {}", error_chain(&e))))?;
        let status = resp.status();
        let mut bytes = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| fail(format!("broke off its answer: {}", error_chain(&e))))?;
            if bytes.len() + chunk.len() > MAX_HOOK_RESPONSE_BYTES {
                return Err(fail(format!(
                    "answered with more than {MAX_HOOK_RESPONSE_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| fail(format!("did not answer within {} ms", hook.timeout_ms)))??;
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        let detail = serde_json::from_slice::<Json>(&bytes)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.get("error"))
                    .or_else(|| v.get("message"))
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| text.trim().to_owned());
        return Err(fail(format!(
            "answered {}: {}",
            status.as_u16(),
            crate::classify::truncate(&detail, 300)
        )));
    }
    Ok(serde_json::from_slice::<Json>(&bytes).unwrap_or_else(|_| Json::String(text.into_owned())))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use switchyard_crds::snapshot::{HeaderSnapshot, HookSnapshot, SecretValue};
    use switchyard_crds::task_chain::InjectionArg;

    use super::*;

    #[test]
    fn body_carries_args_input_and_body_properties() {
        let hook = HookSnapshot {
            name: "tracker".into(),
            url: "http://hooks.internal/x".into(),
            timeout_ms: 100,
            headers: vec![HeaderSnapshot {
                name: "Authorization".into(),
                value: SecretValue::new("Bearer secret-token"),
            }],
            properties: Some(InjectionArg {
                in_: InjectionLocation::Body,
                name: "access_token".into(),
                value: "abc".into(),
            }),
        };
        let mut args = serde_json::Map::new();
        args.insert("title".into(), json!("Bug"));
        let call = HookCall {
            hook: &hook,
            task: "file_bug",
            tool: Some("create_issue"),
            input: json!("it crashes"),
            args,
        };
        let b = body("team/triage", &call);
        assert_eq!(
            b,
            json!({"hook": "tracker", "tool": "create_issue", "chain": "team/triage", "task": "file_bug",
                   "input": "it crashes", "args": {"title": "Bug", "access_token": "abc"}})
        );
        assert!(
            !b.to_string().contains("secret-token"),
            "headers never go in the body"
        );
        assert!(
            !format!("{call:?}").contains("secret-token"),
            "nor in debug output"
        );
    }
}
