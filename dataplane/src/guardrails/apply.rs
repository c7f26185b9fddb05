//! Request-level guardrails: walk every prompt string of an OpenAI or Anthropic request body,
//! scan it, and alert, redact or block according to the workspace policy.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_crds::workspace::{GuardrailAction, Guardrails};

use super::redact::{redact, snippet_masked};
use super::scanner::{Raw, merge};
use super::{Alert, Category, Finding, Scanner};

/// What to do per category (a Workspace's `spec.guardrails`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    /// Action for cloud keys, private keys, tokens and passwords.
    pub secrets: GuardrailAction,
    /// Action for emails, phone numbers, card numbers and IBANs.
    pub pii: GuardrailAction,
}

impl Policy {
    /// Action for one category.
    pub fn action(&self, category: Category) -> GuardrailAction {
        match category {
            Category::Secrets => self.secrets,
            Category::Pii => self.pii,
        }
    }

    /// Nothing to scan for.
    pub fn is_off(&self) -> bool {
        self.secrets == GuardrailAction::Off && self.pii == GuardrailAction::Off
    }
}

impl From<&Guardrails> for Policy {
    fn from(g: &Guardrails) -> Self {
        Policy {
            secrets: g.secrets,
            pii: g.pii,
        }
    }
}

/// Result of [`apply`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Every finding of a category whose action is not `off`, in body order.
    pub alerts: Vec<Alert>,
    /// A category with action `block` found something: refuse the request.
    pub blocked: bool,
    /// The body was changed (redaction).
    pub modified: bool,
}

/// Scans every piece of prompt text in `body` (either dialect, detected by shape) and applies
/// `policy`:
/// - `alert`: record an [`Alert`], leave the text alone;
/// - `redact`: record, replace the finding in place with `[REDACTED:<kind>]`, set `modified`;
/// - `block`: record, set `blocked`. The finding is also replaced in the body (setting
///   `modified`), so a blocked body that is logged or recorded does not carry the secret.
///
/// Walked: `system` (string or blocks), `instructions`, `messages[]` (`content` as string or
/// parts/blocks; `text` of text parts; `tool_result.content` as string or blocks; every string
/// inside `tool_use.input`, object keys included; `document` text sources;
/// `tool_calls[].function.arguments`; legacy `function_call.arguments`), `prompt` (string or
/// array of strings), `suffix`, `input` (string, array of strings, or Responses API items).
/// Images, audio and non-text blocks are not scanned.
pub fn apply(scanner: &Scanner, policy: &Policy, body: &mut Value) -> Outcome {
    let mut w = Walker {
        scanner,
        policy,
        secrets: policy.secrets != GuardrailAction::Off,
        pii: policy.pii != GuardrailAction::Off,
        out: Outcome::default(),
    };
    if policy.is_off() {
        return w.out;
    }
    let Some(obj) = body.as_object_mut() else {
        return w.out;
    };
    if let Some(v) = obj.get_mut("system") {
        w.content(v, "/system".to_owned());
    }
    if let Some(Value::String(s)) = obj.get_mut("instructions") {
        w.text(s, "/instructions");
    }
    if let Some(Value::Array(msgs)) = obj.get_mut("messages") {
        for (i, m) in msgs.iter_mut().enumerate() {
            w.message(m, format!("/messages/{i}"));
        }
    }
    if let Some(v) = obj.get_mut("prompt") {
        w.strings(v, "/prompt".to_owned());
    }
    if let Some(Value::String(s)) = obj.get_mut("suffix") {
        w.text(s, "/suffix");
    }
    if let Some(v) = obj.get_mut("input") {
        match v {
            Value::String(s) => w.text(s, "/input"),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let ptr = format!("/input/{i}");
                    match item {
                        Value::String(s) => w.text(s, &ptr),
                        Value::Object(_) => w.message(item, ptr),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    w.out
}

/// RFC 6901 escaping of one reference token.
fn escape_token(t: &str) -> String {
    t.replace('~', "~0").replace('/', "~1")
}

struct Walker<'a> {
    scanner: &'a Scanner,
    policy: &'a Policy,
    secrets: bool,
    pii: bool,
    out: Outcome,
}

impl Walker<'_> {
    /// A chat message or Responses API input item.
    fn message(&mut self, m: &mut Value, ptr: String) {
        let Value::Object(obj) = m else { return };
        if let Some(c) = obj.get_mut("content") {
            self.content(c, format!("{ptr}/content"));
        }
        if let Some(Value::Array(calls)) = obj.get_mut("tool_calls") {
            for (i, call) in calls.iter_mut().enumerate() {
                if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                    self.text(args, &format!("{ptr}/tool_calls/{i}/function/arguments"));
                }
            }
        }
        if let Some(Value::String(args)) = obj
            .get_mut("function_call")
            .and_then(|f| f.get_mut("arguments"))
        {
            self.text(args, &format!("{ptr}/function_call/arguments"));
        }
        // Responses API items: function_call arguments and function_call_output output.
        if obj.get("type").and_then(Value::as_str) == Some("function_call")
            && let Some(Value::String(args)) = obj.get_mut("arguments")
        {
            self.text(args, &format!("{ptr}/arguments"));
        }
        if let Some(Value::String(s)) = obj.get_mut("output") {
            self.text(s, &format!("{ptr}/output"));
        }
    }

    /// A `content`/`system` value: string, or array of parts/blocks (or strings).
    fn content(&mut self, v: &mut Value, ptr: String) {
        match v {
            Value::String(s) => self.text(s, &ptr),
            Value::Array(parts) => {
                for (i, p) in parts.iter_mut().enumerate() {
                    let p_ptr = format!("{ptr}/{i}");
                    match p {
                        Value::String(s) => self.text(s, &p_ptr),
                        Value::Object(_) => self.block(p, p_ptr),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// One content part or block.
    fn block(&mut self, b: &mut Value, ptr: String) {
        let Value::Object(obj) = b else { return };
        let ty = obj
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        // Thinking blocks are signed model output: never rewritten.
        if ty == "thinking" || ty == "redacted_thinking" {
            return;
        }
        if let Some(Value::String(s)) = obj.get_mut("text") {
            self.text(s, &format!("{ptr}/text"));
        }
        match ty.as_str() {
            "tool_result" | "search_result" | "web_search_tool_result" => {
                if let Some(c) = obj.get_mut("content") {
                    self.content(c, format!("{ptr}/content"));
                }
            }
            "tool_use" | "server_tool_use" => {
                if let Some(input) = obj.get_mut("input") {
                    self.any(input, format!("{ptr}/input"));
                }
            }
            "document" => {
                if let Some(Value::String(s)) = obj.get_mut("context") {
                    self.text(s, &format!("{ptr}/context"));
                }
                if let Some(Value::Object(src)) = obj.get_mut("source") {
                    match src.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            if let Some(Value::String(s)) = src.get_mut("data") {
                                self.text(s, &format!("{ptr}/source/data"));
                            }
                        }
                        Some("content") => {
                            if let Some(c) = src.get_mut("content") {
                                self.content(c, format!("{ptr}/source/content"));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// `prompt`: a string or an array of strings (token-id arrays are skipped).
    fn strings(&mut self, v: &mut Value, ptr: String) {
        match v {
            Value::String(s) => self.text(s, &ptr),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Value::String(s) = item {
                        self.text(s, &format!("{ptr}/{i}"));
                    }
                }
            }
            _ => {}
        }
    }

    /// Every string inside an arbitrary JSON value (tool inputs), object keys included.
    fn any(&mut self, v: &mut Value, ptr: String) {
        match v {
            Value::String(s) => self.text(s, &ptr),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.any(item, format!("{ptr}/{i}"));
                }
            }
            Value::Object(map) => self.object(map, &ptr),
            _ => {}
        }
    }

    fn object(&mut self, map: &mut Map<String, Value>, ptr: &str) {
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            // A key can carry a secret too. Pointers name it by its masked form (never by the
            // secret), and it is renamed when the policy rewrites.
            let found = self.scanner.scan(&key, self.secrets, self.pii);
            let display = if found.is_empty() {
                key.clone()
            } else {
                redact(&key, &found)
            };
            let member_ptr = format!("{ptr}/{}", escape_token(&display));
            let mut new_key = key.clone();
            if !found.is_empty() {
                self.text(&mut new_key, &member_ptr);
            }
            if new_key != key
                && let Some(val) = map.remove(&key)
            {
                let mut unique = new_key.clone();
                let mut n = 1;
                while map.contains_key(&unique) {
                    n += 1;
                    unique = format!("{new_key}_{n}");
                }
                new_key = unique;
                map.insert(new_key.clone(), val);
            }
            if let Some(val) = map.get_mut(&new_key) {
                self.any(val, member_ptr);
            }
        }
    }

    /// Scans one string at JSON pointer `location`, records alerts and rewrites it as the policy
    /// says.
    fn text(&mut self, s: &mut String, location: &str) {
        let raws = self.scanner.scan_raw(s, self.secrets, self.pii);
        if raws.is_empty() {
            return;
        }
        // Snippets mask everything either category finds, even a category the policy turns off:
        // an alert must not carry a neighbouring secret or PII item into the record store.
        let all: Vec<Finding> = if self.secrets && self.pii {
            merge(raws.clone())
        } else {
            self.scanner.scan(s, true, true)
        };
        let mut per_cat: Vec<(Finding, GuardrailAction)> = Vec::new();
        for cat in [Category::Secrets, Category::Pii] {
            let action = self.policy.action(cat);
            if action == GuardrailAction::Off {
                continue;
            }
            let of_cat: Vec<Raw> = raws
                .iter()
                .filter(|r| r.finding.category == cat)
                .copied()
                .collect();
            per_cat.extend(merge(of_cat).into_iter().map(|f| (f, action)));
        }
        per_cat.sort_by_key(|(f, _)| (f.start, f.end));
        let rewrite: Vec<Finding> = per_cat
            .iter()
            .filter(|(_, a)| matches!(a, GuardrailAction::Redact | GuardrailAction::Block))
            .map(|(f, _)| *f)
            .collect();
        for (f, action) in &per_cat {
            self.out.alerts.push(Alert {
                category: f.category,
                kind: f.kind.to_owned(),
                action: *action,
                snippet: snippet_masked(s, f, &all),
                location: location.to_owned(),
            });
            if *action == GuardrailAction::Block {
                self.out.blocked = true;
            }
        }
        if !rewrite.is_empty() {
            let new = redact(s, &rewrite);
            if new != *s {
                *s = new;
                self.out.modified = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardrails_pointer_escaping() {
        assert_eq!(escape_token("a/b~c"), "a~1b~0c");
    }

    #[test]
    fn guardrails_off_policy_touches_nothing() {
        let scanner = Scanner::new();
        let mut body = serde_json::json!({"messages":[{"role":"user","content":"mail me at a.b@example.org"}]});
        let before = body.clone();
        let out = apply(&scanner, &Policy::default(), &mut body);
        assert_eq!(out, Outcome::default());
        assert_eq!(body, before);
    }

    #[test]
    fn guardrails_alert_serializes_category_lowercase() {
        let a = Alert {
            category: Category::Pii,
            kind: "email".into(),
            action: GuardrailAction::Redact,
            snippet: "x [REDACTED:email] y".into(),
            location: "/messages/0/content".into(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["category"], "pii");
        assert_eq!(v["action"], "redact");
        let back: Alert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }
}
