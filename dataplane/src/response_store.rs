//! The state behind the Responses API's `store` and `previous_response_id`: per workspace, the
//! responses this data plane answered, each with the whole conversation that led to it (its
//! input items, earlier turns expanded) and the response object itself (its `output` items).
//!
//! - A later request naming `previous_response_id` continues from a stored entry: its input is
//!   the entry's input, then the entry's output, then the new input (OpenAI's semantics:
//!   `instructions` are not carried over).
//! - Entries of one workspace are never visible to another: the workspace is part of every
//!   lookup, so an id from another workspace is not found (never a wrong conversation).
//! - Memory is bounded per workspace, in entries and in bytes (the serialized size of an
//!   entry); the least recently used entries are evicted first. An entry larger than the byte
//!   bound is not kept. An evicted or never-kept id is not found.
//! - The store is in memory and per process: several data-plane replicas do not share it (see
//!   `docs/dataplane-api.md`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

/// Bounds of each workspace's store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most responses kept per workspace (0: nothing is kept).
    pub max_entries: usize,
    /// Most bytes kept per workspace (serialized input, output and response).
    pub max_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_entries: 4096,
            max_bytes: 64 << 20,
        }
    }
}

/// One stored response.
#[derive(Debug, PartialEq)]
pub struct StoredResponse {
    /// The whole input that produced the response (earlier turns expanded).
    pub input: Vec<Value>,
    /// The response object as the client got it (`output` holds its items).
    pub response: Value,
    /// The Provider that produced it natively (OpenAI keeps its own state of it), or `None`
    /// for a response the gateway translated.
    pub native_provider: Option<String>,
}

impl StoredResponse {
    /// The response's output items.
    pub fn output(&self) -> &[Value] {
        self.response
            .get("output")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The input of a request continuing from this response: this response's input, its output,
    /// then `new_input`.
    pub fn continued(&self, new_input: &[Value]) -> Vec<Value> {
        let mut items =
            Vec::with_capacity(self.input.len() + self.output().len() + new_input.len());
        items.extend(self.input.iter().cloned());
        items.extend(self.output().iter().cloned());
        items.extend(new_input.iter().cloned());
        items
    }

    fn size(&self) -> usize {
        let input: usize = self
            .input
            .iter()
            .map(|v| serde_json::to_vec(v).map_or(0, |b| b.len()))
            .sum();
        let response = serde_json::to_vec(&self.response).map_or(0, |b| b.len());
        input + response + self.native_provider.as_ref().map_or(0, String::len)
    }
}

/// The store of every workspace.
#[derive(Debug, Default)]
pub struct ResponseStore {
    limits: StoreLimits,
    spaces: Mutex<HashMap<String, Space>>,
}

/// One workspace's entries, with their recency.
#[derive(Debug, Default)]
struct Space {
    entries: HashMap<String, Entry>,
    /// Use tick → id, oldest first.
    order: BTreeMap<u64, String>,
    bytes: usize,
    tick: u64,
}

#[derive(Debug)]
struct Entry {
    value: Arc<StoredResponse>,
    bytes: usize,
    tick: u64,
}

impl Space {
    fn touch(&mut self, id: &str) -> Option<Arc<StoredResponse>> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(id)?;
        self.order.remove(&entry.tick);
        entry.tick = tick;
        self.order.insert(tick, id.to_owned());
        Some(entry.value.clone())
    }

    fn remove(&mut self, id: &str) -> Option<Arc<StoredResponse>> {
        let entry = self.entries.remove(id)?;
        self.order.remove(&entry.tick);
        self.bytes -= entry.bytes;
        Some(entry.value)
    }

    fn evict_oldest(&mut self) {
        if let Some((_, id)) = self.order.pop_first()
            && let Some(entry) = self.entries.remove(&id)
        {
            self.bytes -= entry.bytes;
        }
    }
}

impl ResponseStore {
    /// An empty store with these bounds per workspace.
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            spaces: Mutex::default(),
        }
    }

    /// The bounds.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    fn spaces(&self) -> std::sync::MutexGuard<'_, HashMap<String, Space>> {
        // The maps stay consistent whatever panicked while holding the lock.
        self.spaces.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `response` under `id` in `workspace` (replacing an entry of that id), evicting the
    /// least recently used entries beyond the bounds. `false` when it is not kept (the store is
    /// disabled, or the entry alone is larger than the byte bound).
    pub fn put(&self, workspace: &str, id: &str, response: StoredResponse) -> bool {
        let bytes = response.size() + id.len();
        if self.limits.max_entries == 0 || bytes > self.limits.max_bytes {
            // Whatever was stored under the id is outdated now.
            self.remove(workspace, id);
            return false;
        }
        let mut spaces = self.spaces();
        let space = spaces.entry(workspace.to_owned()).or_default();
        space.remove(id);
        while space.entries.len() >= self.limits.max_entries
            || space.bytes + bytes > self.limits.max_bytes
        {
            if space.entries.is_empty() {
                break;
            }
            space.evict_oldest();
        }
        space.tick += 1;
        let tick = space.tick;
        space.bytes += bytes;
        space.order.insert(tick, id.to_owned());
        space.entries.insert(
            id.to_owned(),
            Entry {
                value: Arc::new(response),
                bytes,
                tick,
            },
        );
        true
    }

    /// The response `id` of `workspace` (made the most recently used).
    pub fn get(&self, workspace: &str, id: &str) -> Option<Arc<StoredResponse>> {
        self.spaces().get_mut(workspace)?.touch(id)
    }

    /// Removes the response `id` of `workspace`.
    pub fn remove(&self, workspace: &str, id: &str) -> Option<Arc<StoredResponse>> {
        let mut spaces = self.spaces();
        let space = spaces.get_mut(workspace)?;
        let removed = space.remove(id);
        if space.entries.is_empty() {
            spaces.remove(workspace);
        }
        removed
    }

    /// Entries and bytes kept for `workspace`.
    pub fn usage(&self, workspace: &str) -> (usize, usize) {
        self.spaces()
            .get(workspace)
            .map_or((0, 0), |s| (s.entries.len(), s.bytes))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn response(text: &str) -> StoredResponse {
        StoredResponse {
            input: vec![json!({"type": "message", "role": "user", "content": text})],
            response: json!({"id": "r", "object": "response", "output": [
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
            ]}),
            native_provider: None,
        }
    }

    #[test]
    fn entries_are_per_workspace() {
        let store = ResponseStore::new(StoreLimits::default());
        assert!(store.put("ns/a", "resp_1", response("hi")));
        assert!(store.get("ns/a", "resp_1").is_some());
        assert!(store.get("ns/b", "resp_1").is_none(), "another workspace");
        assert!(store.get("ns/a", "resp_2").is_none());
        assert!(store.remove("ns/b", "resp_1").is_none());
        assert!(store.remove("ns/a", "resp_1").is_some());
        assert!(store.get("ns/a", "resp_1").is_none());
        assert_eq!(store.usage("ns/a"), (0, 0));
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let store = ResponseStore::new(StoreLimits {
            max_entries: 2,
            max_bytes: 1 << 20,
        });
        store.put("w", "a", response("a"));
        store.put("w", "b", response("b"));
        assert!(store.get("w", "a").is_some(), "a is now the most recent");
        store.put("w", "c", response("c"));
        assert!(store.get("w", "b").is_none(), "b evicted");
        assert!(store.get("w", "a").is_some());
        assert!(store.get("w", "c").is_some());
        assert_eq!(store.usage("w").0, 2);
        // Another workspace has its own bound.
        store.put("v", "a", response("a"));
        assert_eq!(store.usage("w").0, 2);
    }

    #[test]
    fn bytes_are_bounded() {
        let one = response(&"x".repeat(1000)).size() + 1;
        let store = ResponseStore::new(StoreLimits {
            max_entries: 100,
            max_bytes: one * 3,
        });
        for id in ["a", "b", "c", "d", "e"] {
            assert!(store.put("w", id, response(&"x".repeat(1000))));
            assert!(store.usage("w").1 <= one * 3);
        }
        assert_eq!(store.usage("w").0, 3);
        assert!(store.get("w", "a").is_none() && store.get("w", "b").is_none());
        // Larger than the whole bound: not kept, and not kept under an old id either.
        assert!(!store.put("w", "e", response(&"y".repeat(one * 4))));
        assert!(store.get("w", "e").is_none());
        assert_eq!(store.usage("w").0, 2);
    }

    #[test]
    fn a_disabled_store_keeps_nothing() {
        let store = ResponseStore::new(StoreLimits {
            max_entries: 0,
            max_bytes: 1 << 20,
        });
        assert!(!store.put("w", "a", response("a")));
        assert!(store.get("w", "a").is_none());
    }

    #[test]
    fn a_continuation_is_input_then_output_then_new_input() {
        let r = response("one");
        let next = r.continued(&[json!({"role": "user", "content": "two"})]);
        assert_eq!(next.len(), 3);
        assert_eq!(next[0]["content"], "one");
        assert_eq!(next[1]["role"], "assistant");
        assert_eq!(next[2]["content"], "two");
    }
}
