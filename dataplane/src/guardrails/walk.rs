//! The walker behind [`super::apply`]: follows a field description ([`super::fields`]) over a
//! request body, scans each string it reaches, records alerts and rewrites findings.

use serde_json::{Map, Value};
use switchyard_crds::workspace::GuardrailAction;

use super::fields::{Members, Text};
use super::redact::{redact, snippet_masked};
use super::scanner::{Raw, merge};
use super::{Alert, Category, Finding, Outcome, Policy, Scanner};

/// RFC 6901 escaping of one reference token.
pub(super) fn escape_token(t: &str) -> String {
    t.replace('~', "~0").replace('/', "~1")
}

pub(super) struct Walker<'a> {
    pub(super) scanner: &'a Scanner,
    pub(super) policy: &'a Policy,
    pub(super) secrets: bool,
    pub(super) pii: bool,
    pub(super) out: Outcome,
}

impl Walker<'_> {
    /// Scans `v` at JSON pointer `ptr` as `node` describes (see [`super::fields`]).
    pub(super) fn walk(&mut self, node: &Text, v: &mut Value, ptr: &str) {
        match (node, v) {
            (Text::Skip, _) | (_, Value::Null | Value::Bool(_) | Value::Number(_)) => {}
            (_, Value::String(s)) => self.text(s, ptr),
            (Text::Object(members), Value::Object(map)) => self.members(members, map, ptr),
            (Text::Each(item), Value::Array(items)) => {
                for (i, x) in items.iter_mut().enumerate() {
                    self.walk(item, x, &format!("{ptr}/{i}"));
                }
            }
            (Text::Kinds(kinds, fallback), Value::Object(map)) => {
                let ty = map.get("type").and_then(Value::as_str);
                let members = kinds
                    .iter()
                    .find(|(k, _)| Some(*k) == ty)
                    .map_or(*fallback, |(_, m)| *m);
                self.members(members, map, ptr);
            }
            // `All`, and a described field of an unexpected shape: every string inside.
            (_, v) => self.any(v, ptr.to_owned()),
        }
    }

    fn members(&mut self, members: Members, map: &mut Map<String, Value>, ptr: &str) {
        for (name, node) in members {
            if let Some(v) = map.get_mut(*name) {
                self.walk(node, v, &format!("{ptr}/{}", escape_token(name)));
            }
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
}
