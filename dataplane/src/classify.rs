//! Request classification: everything routing and recording need to know about a request,
//! read once from its headers and JSON body.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::HeaderMap;
use regex::Regex;
use serde_json::Value;
use switchyard_crds::router_policy::Parallelism;
use switchyard_routing::{Endpoint, RequestInfo};

use crate::errors::ApiError;

/// Longest user prompt kept for records.
pub const MAX_PROMPT_RECORD: usize = 4096;
/// Most filenames extracted from a request.
const MAX_FILENAMES: usize = 32;
/// Longest text scanned for filenames.
const MAX_FILENAME_SCAN: usize = 64 * 1024;

/// Reads a request. Rejects bodies that are not what the endpoint takes, naming the parameter.
pub fn classify(
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &Value,
) -> Result<RequestInfo, ApiError> {
    classify_as(endpoint, headers, body, Purpose::Generate)
}

/// Reads a token-count request (`POST /v1/messages/count_tokens`): a Messages body, read and
/// checked as [`classify`] does for `/v1/messages`, without `max_tokens` (nothing is generated).
pub fn classify_count_tokens(headers: &HeaderMap, body: &Value) -> Result<RequestInfo, ApiError> {
    classify_as(Endpoint::Messages, headers, body, Purpose::CountTokens)
}

/// What a request is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Generate,
    CountTokens,
}

fn classify_as(
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &Value,
    purpose: Purpose,
) -> Result<RequestInfo, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("request body must be a JSON object"))?;
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(Value::String(_)) | None => {
            return Err(ApiError::invalid("`model` is required").param("model"));
        }
        Some(_) => return Err(ApiError::invalid("`model` must be a string").param("model")),
    };
    if model.len() > 256 {
        return Err(ApiError::invalid("`model` is longer than 256 characters").param("model"));
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("`stream` must be a boolean").param("stream")),
    };
    crate::request_shape::check(endpoint, obj)?;
    let mut info = RequestInfo {
        endpoint_type: Some(endpoint.endpoint_type()),
        model,
        stream: stream && purpose == Purpose::Generate,
        client: client_name(headers),
        ..Default::default()
    };
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages => {
            let messages = match obj.get("messages") {
                Some(Value::Array(m)) if !m.is_empty() => m,
                Some(Value::Array(_)) => {
                    return Err(ApiError::invalid("`messages` must not be empty").param("messages"));
                }
                _ => return Err(ApiError::invalid("`messages` must be an array").param("messages")),
            };
            for (i, m) in messages.iter().enumerate() {
                if !m.get("role").is_some_and(Value::is_string) {
                    return Err(ApiError::invalid(format!("messages[{i}].role is required"))
                        .param(format!("messages[{i}].role")));
                }
            }
            info.tools = obj
                .get("tools")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
            info.images = messages.iter().any(message_has_image);
            info.user_prompt = messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                .map(|m| truncate(&message_text(m), MAX_PROMPT_RECORD));
            let text = info.user_prompt.clone().unwrap_or_default();
            info.filenames = filenames(&text);
            if endpoint == Endpoint::Messages
                && purpose == Purpose::Generate
                && obj.get("max_tokens").is_none()
            {
                return Err(ApiError::invalid("`max_tokens` is required").param("max_tokens"));
            }
        }
        Endpoint::Completions => {
            // A string or an array of strings (token-id prompts carry no text to read).
            let prompt = match obj.get("prompt") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            };
            let suffix = obj
                .get("suffix")
                .and_then(Value::as_str)
                .unwrap_or_default();
            info.fim = !suffix.is_empty() || FIM_MARKERS.iter().any(|m| prompt.contains(m));
            info.filenames = filenames(&prompt);
            info.user_prompt = Some(truncate(&prompt, MAX_PROMPT_RECORD));
        }
        Endpoint::Embeddings => {
            let ok = match obj.get("input") {
                Some(Value::String(_)) => true,
                Some(Value::Array(a)) => !a.is_empty(),
                _ => false,
            };
            if !ok {
                return Err(
                    ApiError::invalid("`input` must be a string or a non-empty array")
                        .param("input"),
                );
            }
            if stream {
                return Err(ApiError::invalid("embeddings cannot be streamed").param("stream"));
            }
        }
        Endpoint::Responses => responses_info(obj, &mut info)?,
    }
    // Tags: header `x-switchyard-tags: k=v,k2=v2` and body `tags` (strings `k=v` or `k`, or an object).
    if let Some(h) = headers
        .get("x-switchyard-tags")
        .and_then(|v| v.to_str().ok())
    {
        for part in h.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            insert_tag(&mut info.tags, part);
        }
    }
    match obj.get("tags") {
        Some(Value::Array(a)) => {
            for t in a.iter().filter_map(Value::as_str) {
                insert_tag(&mut info.tags, t);
            }
        }
        Some(Value::Object(o)) => {
            for (k, v) in o {
                info.tags.insert(
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                );
            }
        }
        _ => {}
    }
    if info.tags.len() > 64 {
        return Err(ApiError::invalid("at most 64 tags").param("tags"));
    }
    info.metadata = obj.get("metadata").filter(|m| !m.is_null()).cloned();
    info.user = caller_user(obj);
    info.session_id = session_id(headers, obj);
    info.purpose = header_str(headers, "x-switchyard-purpose").map(|s| truncate(s, 63));
    info.step_type = header_str(headers, "x-switchyard-step-type").map(|s| truncate(s, 63));
    info.parallelism = match header_str(headers, "x-switchyard-parallelism") {
        Some("low") => Some(Parallelism::Low),
        Some("medium") => Some(Parallelism::Medium),
        Some("high") => Some(Parallelism::High),
        _ => None,
    };
    Ok(info)
}

const FIM_MARKERS: [&str; 4] = ["<|fim_prefix|>", "<fim_prefix>", "<|fim▁begin|>", "<PRE>"];

fn insert_tag(tags: &mut BTreeMap<String, String>, part: &str) {
    let (k, v) = part.split_once('=').unwrap_or((part, ""));
    let (k, v) = (k.trim(), v.trim());
    if !k.is_empty() && k.len() <= 128 && v.len() <= 1024 {
        tags.insert(k.to_owned(), v.to_owned());
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Session id: `x-session-id` and client-specific headers, then body metadata; Claude Code's
/// `metadata.user_id` carries its session id ([`AgentUserId`]).
fn session_id(headers: &HeaderMap, obj: &serde_json::Map<String, Value>) -> Option<String> {
    const HEADERS: [&str; 5] = [
        "x-session-id",
        "x-switchyard-session",
        "x-claude-code-session-id",
        "session_id",
        "x-conversation-id",
    ];
    let from_header = HEADERS.iter().find_map(|h| header_str(headers, h));
    let meta = obj.get("metadata");
    let from_meta = meta
        .and_then(|m| m.get("session_id"))
        .and_then(Value::as_str);
    let from_user_id = meta
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
        .and_then(AgentUserId::parse)
        .and_then(|u| u.session);
    from_header
        .or(from_meta)
        .map(str::to_owned)
        .or(from_user_id)
        .and_then(|s| sanitize_id(&s))
}

/// Longest caller id (initiator) or session id kept.
pub const MAX_CALLER_ID: usize = 256;
/// Longest `metadata.user_id` parsed as JSON (Claude Code's is about 200 bytes).
const MAX_USER_ID_JSON: usize = 1024;

/// Who the body says the caller is, stable across the caller's sessions, bounded and
/// sanitised: OpenAI's `safety_identifier` (which replaces `user`), `user` (Chat Completions,
/// Responses, Completions, Embeddings), then `metadata.user_id` (Anthropic Messages) or
/// `metadata.user`/`metadata.user_id` given as free-form metadata (Responses, Chat Completions
/// with `store`). Claude Code's `metadata.user_id` is parsed ([`AgentUserId`]): its account id,
/// else its device id, never its session id (which changes with every session and would
/// restart per-user accounting).
fn caller_user(obj: &serde_json::Map<String, Value>) -> Option<String> {
    let top = ["safety_identifier", "user"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_str).and_then(sanitize_id));
    if top.is_some() {
        return top;
    }
    let meta = obj.get("metadata")?;
    if let Some(raw) = meta.get("user_id").and_then(Value::as_str) {
        let stable = match AgentUserId::parse(raw) {
            Some(parsed) => parsed.stable(),
            None => sanitize_id(raw),
        };
        if stable.is_some() {
            return stable;
        }
    }
    meta.get("user")
        .and_then(Value::as_str)
        .and_then(sanitize_id)
}

/// The parts of Claude Code's `metadata.user_id`. Two shapes are sent:
/// - current versions: a JSON object in a string,
///   `{"device_id":"<64 hex>","account_uuid":"<uuid or empty>","session_id":"<uuid>"}` (what
///   Claude Code 2.1.337 sends in `tests/agents`);
/// - older versions: `user_<64 hex>_account_<uuid or empty>_session_<uuid>` (BerriAI/litellm's
///   Anthropic pass-through tests carry this form).
#[derive(Debug, Default, PartialEq, Eq)]
struct AgentUserId {
    device: Option<String>,
    account: Option<String>,
    session: Option<String>,
}

impl AgentUserId {
    /// Parses either shape; `None` when `raw` is neither (then it is an opaque caller id).
    fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.starts_with('{') {
            if raw.len() > MAX_USER_ID_JSON {
                return None;
            }
            let Ok(Value::Object(o)) = serde_json::from_str::<Value>(raw) else {
                return None;
            };
            let part = |k: &str| o.get(k).and_then(Value::as_str).and_then(sanitize_id);
            let parsed = Self {
                device: part("device_id"),
                account: part("account_uuid"),
                session: part("session_id"),
            };
            return (parsed != Self::default()).then_some(parsed);
        }
        let rest = raw.strip_prefix("user_")?;
        let (device, rest) = rest.split_once("_account_")?;
        let (account, session) = rest.split_once("_session_")?;
        Some(Self {
            device: sanitize_id(device),
            account: sanitize_id(account),
            session: sanitize_id(session),
        })
    }

    /// The stable caller id: the account when the user is logged in, else the device.
    fn stable(self) -> Option<String> {
        self.account.or(self.device)
    }
}

/// A caller or session id as recorded: trimmed, without control characters, at most
/// [`MAX_CALLER_ID`] bytes; `None` when nothing is left.
fn sanitize_id(s: &str) -> Option<String> {
    let clean: String = s.trim().chars().filter(|c| !c.is_control()).collect();
    let clean = truncate(clean.trim(), MAX_CALLER_ID);
    (!clean.is_empty()).then_some(clean)
}

/// Longest client name kept (an unknown client's product token).
pub const MAX_CLIENT_NAME: usize = 64;

/// Known clients by a product token of their User-Agent (ASCII case ignored): the token the
/// UA starts with, or one after a space (Vercel's AI SDK and LangChain.js append theirs to a UA
/// the app may set). The first match in this order names the client, so an agent comes before
/// the SDK it is built on. Each entry names where its UA is set.
const KNOWN_CLIENTS: [(&str, &str); 14] = [
    // `claude-cli/2.0.69 (external, cli)`: Claude Code's UA (as BerriAI/litellm's proxy tests
    // and its pass-through handling see it; Claude Code's source is not public).
    ("claude-cli/", "claude-code"),
    // `codex_cli_rs/0.46.0 (Mac OS 15.1.0; arm64) iTerm.app/3.5.10`: `{originator}/{version}
    // (os; arch) terminal`, originator `codex_cli_rs`, `codex_exec`, `codex_vscode`, …
    // (openai/codex, codex-rs/core/src/default_client.rs, `get_codex_user_agent`).
    ("codex_", "codex"),
    ("codex-", "codex"),
    // `Agents/Python 0.3.2`, which replaces the OpenAI SDK's UA on every model call
    // (openai/openai-agents-python, src/agents/models/chatcmpl_helpers.py, `_USER_AGENT`).
    ("agents/python", "openai-agents"),
    // `ai-sdk/openai/2.0.30 ai-sdk/provider-utils/3.0.9 runtime/node.js/22`: every provider
    // package of the AI SDK (`ai-sdk/anthropic/…`, `ai-sdk/openai-compatible/…`) through
    // `withUserAgentSuffix` (vercel/ai, e.g. packages/openai/src/openai-provider.ts).
    ("ai-sdk/", "vercel-ai-sdk"),
    // `langchainjs-openai/1.0.0 (node/v22.3.0; linux; x64)` and `langchainjs-azure-openai/…`
    // (langchain-ai/langchainjs, libs/langchain-openai/src/utils/azure.ts,
    // `getHeadersWithUserAgent`).
    ("langchainjs", "langchain-js"),
    // `langchain/0.3.27`: LangChain for Python's Groq (and Cloudflare) chat models set it over
    // their SDK's UA (langchain-groq, `ChatGroq.validate_environment`:
    // `default_headers = {"User-Agent": f"langchain/{__version__}"}`).
    ("langchain/", "langchain"),
    // `pydantic-ai/1.0.10`, set on every model request (pydantic/pydantic-ai,
    // pydantic_ai_slim/pydantic_ai/models/__init__.py, `get_user_agent`).
    ("pydantic-ai/", "pydantic-ai"),
    // `Cline/3.74.0` (cline/cline, `buildExternalBasicHeaders`, the headers of its API calls).
    ("cline/", "cline"),
    // The official SDKs (Stainless-generated: `OpenAI/Python 1.99.0`, `OpenAI/JS 5.12.0`,
    // `Anthropic/Python 0.64.0`, `Anthropic/JS 0.60.0`).
    ("openai/python", "openai-python"),
    ("openai/js", "openai-node"),
    ("anthropic/python", "anthropic-python"),
    ("anthropic/js", "anthropic-node"),
    ("anthropic/typescript", "anthropic-node"),
];

/// Client name: a known agent or SDK by name ([`KNOWN_CLIENTS`]; Codex also by its
/// `originator` header), else the UA's product token (the text before its first `/`, space or
/// `(`, of letters, digits and `.`, `_`, `-`, `+` only, at most [`MAX_CLIENT_NAME`] bytes), else
/// `unknown`.
pub fn client_name(headers: &HeaderMap) -> String {
    // Codex sends `originator: codex_cli_rs` (or `codex_exec`, `codex_vscode`, …) on every
    // request, whatever UA suffix its host adds (openai/codex, default_client.rs).
    if header_str(headers, "originator")
        .is_some_and(|o| o.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("codex")))
    {
        return "codex".to_owned();
    }
    let ua = header_str(headers, "user-agent").unwrap_or_default();
    let ua = &ua[..floor_boundary(ua, 1024)];
    let lower = ua.to_ascii_lowercase();
    let starts_token = |needle: &str| {
        lower.starts_with(needle)
            || lower
                .match_indices(needle)
                .any(|(i, _)| lower.as_bytes()[i - 1] == b' ')
    };
    if let Some((_, name)) = KNOWN_CLIENTS
        .iter()
        .find(|(needle, _)| starts_token(needle))
    {
        return (*name).to_owned();
    }
    let token: String = ua
        .chars()
        .take_while(|c| !matches!(c, '/' | '(') && !c.is_whitespace())
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
        .take(MAX_CLIENT_NAME)
        .collect();
    if token.is_empty() {
        "unknown".to_owned()
    } else {
        token
    }
}

/// A Responses request: `input` (a string or an array of items) is required; its last user
/// message is the prompt.
fn responses_info(
    obj: &serde_json::Map<String, Value>,
    info: &mut RequestInfo,
) -> Result<(), ApiError> {
    let items: &[Value] = match obj.get("input") {
        Some(Value::String(s)) => {
            info.user_prompt = Some(truncate(s, MAX_PROMPT_RECORD));
            &[]
        }
        Some(Value::Array(items)) => items,
        _ => {
            return Err(
                ApiError::invalid("`input` must be a string or an array of items").param("input"),
            );
        }
    };
    // Messages are items with a role (`type: "message"` or no type).
    let is_message = |m: &&Value| {
        m.get("role").is_some()
            && m.get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| t == "message")
    };
    info.images = items.iter().filter(is_message).any(message_has_image);
    if let Some(m) = items
        .iter()
        .filter(is_message)
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    {
        info.user_prompt = Some(truncate(&message_text(m), MAX_PROMPT_RECORD));
    }
    info.filenames = filenames(info.user_prompt.as_deref().unwrap_or_default());
    info.tools = obj
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    Ok(())
}

fn message_has_image(m: &Value) -> bool {
    m.get("content")
        .and_then(Value::as_array)
        .is_some_and(|parts| {
            parts.iter().any(|p| {
                matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("image_url" | "image" | "input_image")
                )
            })
        })
}

/// The text of a message (string content or text parts).
pub fn message_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text" | "input_text") => p.get("text").and_then(Value::as_str),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Truncates on a char boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

static FILENAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    // A path-like token ending in a short alphanumeric extension, optionally quoted or after
    // "Path:", "File:", a code fence language tag, or in a <file path="..."> tag.
    Regex::new(r#"(?:^|[\s"'`(<\[=:])((?:[A-Za-z]:)?[\w.\-/\\]*[\w\-]\.[A-Za-z][A-Za-z0-9]{0,9})(?:$|[\s"'`)>\],:;])"#).ok()
});

/// Filenames mentioned in a prompt (deduplicated, in order of appearance).
pub fn filenames(text: &str) -> Vec<String> {
    let Some(re) = FILENAME.as_ref() else {
        return Vec::new();
    };
    let text = &text[..floor_boundary(text, MAX_FILENAME_SCAN)];
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        for c in re.captures_iter(line) {
            let Some(m) = c.get(1) else { continue };
            let name = m.as_str().trim_start_matches("./");
            let ext = name.rsplit('.').next().unwrap_or_default();
            // Skip version numbers, domains and sentences ("e.g", "v1.2", "example.com").
            if ext.len() > 10 || NOT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
                continue;
            }
            if name.chars().filter(|c| *c == '.').count() > 3 {
                continue;
            }
            if !out.iter().any(|o| o == name) {
                out.push(name.to_owned());
                if out.len() == MAX_FILENAMES {
                    return out;
                }
            }
        }
    }
    out
}

const NOT_EXTENSIONS: [&str; 12] = [
    "com", "org", "net", "io", "dev", "ai", "g", "e", "i", "etc", "co", "uk",
];

fn floor_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn names_known_clients_from_their_real_user_agents() {
        for (ua, name) in [
            ("claude-cli/2.0.69 (external, cli)", "claude-code"),
            (
                "codex_cli_rs/0.46.0 (Mac OS 15.1.0; arm64) iTerm.app/3.5.10",
                "codex",
            ),
            ("codex_exec/0.46.0 (Ubuntu 24.4.0; x86_64) unknown", "codex"),
            ("Agents/Python 0.3.2", "openai-agents"),
            (
                "ai-sdk/openai/2.0.30 ai-sdk/provider-utils/3.0.9 runtime/node.js/22",
                "vercel-ai-sdk",
            ),
            (
                "ai-sdk/anthropic/2.0.17 ai-sdk/provider-utils/3.0.9 runtime/browser",
                "vercel-ai-sdk",
            ),
            (
                "my-app/1.0 ai-sdk/openai-compatible/1.0.18",
                "vercel-ai-sdk",
            ),
            (
                "langchainjs-openai/1.0.0 (node/v22.3.0; linux; x64)",
                "langchain-js",
            ),
            (
                "langchainjs-azure-openai/2.0.0 (node/v20; darwin; arm64)",
                "langchain-js",
            ),
            ("langchain/0.3.27", "langchain"),
            ("pydantic-ai/1.0.10", "pydantic-ai"),
            ("Cline/3.74.0", "cline"),
            ("OpenAI/Python 1.99.0", "openai-python"),
            ("OpenAI/JS 5.12.0", "openai-node"),
            ("Anthropic/Python 0.64.0", "anthropic-python"),
            ("Anthropic/JS 0.60.0", "anthropic-node"),
        ] {
            let h = headers(&[("user-agent", ua)]);
            assert_eq!(client_name(&h), name, "{ua}");
        }
        // Codex by its originator header, whatever its UA says.
        let h = headers(&[("originator", "codex_vscode"), ("user-agent", "node")]);
        assert_eq!(client_name(&h), "codex");
    }

    #[test]
    fn unknown_clients_keep_a_bounded_sanitised_product_token() {
        for (ua, name) in [
            ("curl/8.5.0", "curl"),
            ("python-httpx/0.28.1", "python-httpx"),
            ("Mozilla/5.0 (X11; Linux x86_64)", "Mozilla"),
            ("GitHubCopilotChat/0.30.1", "GitHubCopilotChat"),
            ("weird<script>/1", "weird"),
            ("(no token)", "unknown"),
            ("", "unknown"),
            // Not a product token of its own: `xcodex_…`, `notcline/…`.
            ("xcodex_cli/1", "xcodex_cli"),
            ("notcline/1.0", "notcline"),
        ] {
            let h = headers(&[("user-agent", ua)]);
            assert_eq!(client_name(&h), name, "{ua:?}");
        }
        assert_eq!(client_name(&HeaderMap::new()), "unknown");
        let long = format!("{}/1.0", "a".repeat(500));
        assert_eq!(
            client_name(&headers(&[("user-agent", &long)])).len(),
            MAX_CLIENT_NAME
        );
    }

    #[test]
    fn extracts_filenames_from_common_prompt_shapes() {
        let text = "# Path: src/app/main.py\nPlease fix `utils/helpers.ts` and <file path=\"lib/x.rs\">\n```go cmd/server.go\nsee https://example.com and version 1.2.3 e.g. this";
        assert_eq!(
            filenames(text),
            [
                "src/app/main.py",
                "utils/helpers.ts",
                "lib/x.rs",
                "cmd/server.go"
            ]
        );
    }

    #[test]
    fn classifies_chat_with_tools_images_tags_session() {
        let body = json!({
            "model": "gpt-4o", "stream": true,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tags": ["team=search", "urgent"],
            "metadata": {"session_id": "s-1"},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "look at main.py"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}]
        });
        let h = headers(&[
            ("user-agent", "OpenAI/Python 1.99.0"),
            ("x-switchyard-tags", "env=prod"),
        ]);
        let info = classify(Endpoint::ChatCompletions, &h, &body).unwrap();
        assert!(info.stream && info.tools && info.images && !info.fim);
        assert_eq!(info.filenames, ["main.py"]);
        assert_eq!(info.client, "openai-python");
        assert_eq!(info.session_id.as_deref(), Some("s-1"));
        assert_eq!(info.tags.get("team").map(String::as_str), Some("search"));
        assert_eq!(info.tags.get("urgent").map(String::as_str), Some(""));
        assert_eq!(info.tags.get("env").map(String::as_str), Some("prod"));
    }

    #[test]
    fn fim_by_suffix_or_marker() {
        let h = HeaderMap::new();
        let a = classify(
            Endpoint::Completions,
            &h,
            &json!({"model": "m", "prompt": "def f(", "suffix": ")"}),
        )
        .unwrap();
        assert!(a.fim);
        let b = classify(
            Endpoint::Completions,
            &h,
            &json!({"model": "m", "prompt": "<|fim_prefix|>x<|fim_suffix|>"}),
        )
        .unwrap();
        assert!(b.fim);
        let c = classify(
            Endpoint::Completions,
            &h,
            &json!({"model": "m", "prompt": "Once upon"}),
        )
        .unwrap();
        assert!(!c.fim);
    }

    const DEVICE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ACCOUNT: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";

    fn messages_with_user_id(user_id: &str) -> RequestInfo {
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 5,
            "metadata": {"user_id": user_id}, "messages": [{"role": "user", "content": "hi"}]});
        classify(Endpoint::Messages, &HeaderMap::new(), &body).unwrap()
    }

    #[test]
    fn claude_code_json_user_id_gives_account_as_initiator_and_its_session() {
        for session in [
            "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
            "cccccccc-cccc-4ccc-8ccc-cccccccccccc",
        ] {
            let user_id =
                json!({"device_id": DEVICE, "account_uuid": ACCOUNT, "session_id": session})
                    .to_string();
            let info = messages_with_user_id(&user_id);
            assert_eq!(
                info.user.as_deref(),
                Some(ACCOUNT),
                "stable across sessions"
            );
            assert_eq!(info.session_id.as_deref(), Some(session));
        }
        // Not logged in (API key): the account is empty, the device identifies the caller.
        let user_id =
            json!({"device_id": DEVICE, "account_uuid": "", "session_id": "s-1"}).to_string();
        let info = messages_with_user_id(&user_id);
        assert_eq!(info.user.as_deref(), Some(DEVICE));
        assert_eq!(info.session_id.as_deref(), Some("s-1"));
        // Only a session: no caller id (never the session).
        let info = messages_with_user_id(&json!({"session_id": "s-2"}).to_string());
        assert_eq!(info.user, None);
        assert_eq!(info.session_id.as_deref(), Some("s-2"));
    }

    #[test]
    fn claude_code_legacy_user_id_gives_account_else_device() {
        let with_account = format!("user_{DEVICE}_account_{ACCOUNT}_session_1234-5678");
        let info = messages_with_user_id(&with_account);
        assert_eq!(info.user.as_deref(), Some(ACCOUNT));
        assert_eq!(info.session_id.as_deref(), Some("1234-5678"));
        let no_account = format!("user_{DEVICE}_account__session_9999");
        let info = messages_with_user_id(&no_account);
        assert_eq!(info.user.as_deref(), Some(DEVICE));
        assert_eq!(info.session_id.as_deref(), Some("9999"));
    }

    #[test]
    fn other_user_ids_are_opaque_bounded_and_sanitised() {
        let info = messages_with_user_id("  alice@example.com\u{7}\n ");
        assert_eq!(info.user.as_deref(), Some("alice@example.com"));
        assert_eq!(info.session_id, None);
        let info = messages_with_user_id(&"x".repeat(1000));
        assert_eq!(info.user.map(|u| u.len()), Some(MAX_CALLER_ID));
        // Not an object, or an object too long to parse: kept as an opaque (bounded) id.
        let info = messages_with_user_id("{not json");
        assert_eq!(info.user.as_deref(), Some("{not json"));
        let huge = json!({"device_id": "d".repeat(2000), "session_id": "s"}).to_string();
        let info = messages_with_user_id(&huge);
        assert_eq!(info.user.map(|u| u.len()), Some(MAX_CALLER_ID));
        assert_eq!(info.session_id, None);
        // Blank: no caller.
        assert_eq!(messages_with_user_id("   ").user, None);
    }

    #[test]
    fn openai_user_fields_in_order() {
        let chat = |extra: Value| {
            let mut body =
                json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            classify(Endpoint::ChatCompletions, &HeaderMap::new(), &body)
                .unwrap()
                .user
        };
        assert_eq!(chat(json!({"user": "u-1"})).as_deref(), Some("u-1"));
        assert_eq!(
            chat(json!({"user": "u-1", "safety_identifier": "hash-1"})).as_deref(),
            Some("hash-1")
        );
        assert_eq!(
            chat(json!({"store": true, "metadata": {"user": "m-1"}})).as_deref(),
            Some("m-1")
        );
        assert_eq!(
            chat(json!({"store": true, "metadata": {"user_id": "m-2", "user": "m-1"}})).as_deref(),
            Some("m-2")
        );
    }

    #[test]
    fn claude_code_session_from_user_id() {
        let body = json!({"model": "m", "max_tokens": 5, "metadata": {"user_id": "user_abc_account__session_1234-5678"}, "messages": [{"role": "user", "content": "hi"}]});
        let info = classify(Endpoint::Messages, &HeaderMap::new(), &body).unwrap();
        assert_eq!(info.session_id.as_deref(), Some("1234-5678"));
    }

    #[test]
    fn claude_code_json_user_id_gives_session_and_user() {
        let user_id = r#"{"device_id":"ab12","account_uuid":"","session_id":"9716bf75-adb2"}"#;
        let body = json!({"model": "m", "max_tokens": 5, "metadata": {"user_id": user_id}, "messages": [{"role": "user", "content": "hi"}]});
        let info = classify(Endpoint::Messages, &HeaderMap::new(), &body).unwrap();
        assert_eq!(info.session_id.as_deref(), Some("9716bf75-adb2"));
        assert_eq!(info.user.as_deref(), Some("ab12"));
        // Logged in: the account; a header's session wins.
        let user_id = r#"{"device_id":"ab12","account_uuid":"acc-1","session_id":"s-body"}"#;
        let body = json!({"model": "m", "max_tokens": 5, "metadata": {"user_id": user_id}, "messages": [{"role": "user", "content": "hi"}]});
        let h = headers(&[("x-claude-code-session-id", "s-header")]);
        let info = classify(Endpoint::Messages, &h, &body).unwrap();
        assert_eq!(info.session_id.as_deref(), Some("s-header"));
        assert_eq!(info.user.as_deref(), Some("acc-1"));
        // Not an object: the string as it is.
        let body = json!({"model": "m", "max_tokens": 5, "metadata": {"user_id": "{not json"}, "messages": [{"role": "user", "content": "hi"}]});
        let info = classify(Endpoint::Messages, &HeaderMap::new(), &body).unwrap();
        assert_eq!(info.user.as_deref(), Some("{not json"));
        assert_eq!(info.session_id, None);
    }

    #[test]
    fn rejects_bad_bodies_naming_the_parameter() {
        let h = HeaderMap::new();
        for (endpoint, body, param) in [
            (
                Endpoint::ChatCompletions,
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (
                Endpoint::ChatCompletions,
                json!({"model": "m", "messages": []}),
                "messages",
            ),
            (
                Endpoint::ChatCompletions,
                json!({"model": "m", "messages": [{"content": "x"}]}),
                "messages[0].role",
            ),
            (
                Endpoint::ChatCompletions,
                json!({"model": "m", "stream": "yes", "messages": [{"role": "user"}]}),
                "stream",
            ),
            (
                Endpoint::Messages,
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
            ),
            (
                Endpoint::Completions,
                json!({"model": "m", "prompt": 5}),
                "prompt",
            ),
            (Endpoint::Embeddings, json!({"model": "m"}), "input"),
        ] {
            let err = classify(endpoint, &h, &body).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{body}");
        }
        assert!(classify(Endpoint::ChatCompletions, &h, &json!([1])).is_err());
    }
}
