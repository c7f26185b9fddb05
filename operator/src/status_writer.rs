//! Writes statuses with server-side apply on the status subresource, under one field manager,
//! only when the content differs from what the object already has (or what was last written),
//! with per-object exponential backoff after failures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The one field manager the operator writes status with.
pub const FIELD_MANAGER: &str = "switchyard-operator";

/// What [`StatusWriter::write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The status was patched.
    Patched,
    /// Nothing to do: the object already has this status.
    Unchanged,
    /// Skipped: the object is backing off after failures.
    BackingOff,
}

#[derive(Debug)]
struct Failure {
    count: u32,
    retry_at: Instant,
}

/// Status writer.
pub struct StatusWriter {
    client: Client,
    last: Mutex<HashMap<String, Value>>,
    failures: Mutex<HashMap<String, Failure>>,
    timeout: Duration,
}

/// Backoff after `n` failures: 1 s, 2 s, 4 s … capped at 5 min.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

impl std::fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWriter")
            .field("backing_off", &self.backing_off())
            .finish_non_exhaustive()
    }
}

impl StatusWriter {
    /// A writer using `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            last: Mutex::default(),
            failures: Mutex::default(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Applies `status` to object `namespace/name` of kind `K` unless `current` (the status the
    /// object has, from the watch cache) or the last status written already equals it.
    pub async fn write<K, S>(
        &self,
        namespace: &str,
        name: &str,
        current: Option<&S>,
        status: &S,
    ) -> Result<Written, kube::Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        S: Serialize + PartialEq,
    {
        let key = format!("{}/{namespace}/{name}", K::kind(&()));
        let desired = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
        if current == Some(status) {
            self.remember(&key, desired);
            return Ok(Written::Unchanged);
        }
        if self
            .last
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
            .as_ref()
            == Some(&desired)
        {
            return Ok(Written::Unchanged);
        }
        let retry_at = self
            .failures
            .lock()
            .ok()
            .and_then(|m| m.get(&key).map(|f| f.retry_at));
        if retry_at.is_some_and(|at| Instant::now() < at) {
            return Ok(Written::BackingOff);
        }
        // The response is read as a DynamicObject: status writes must not depend on decoding
        // every spec field of the object that comes back.
        let resource = kube::core::ApiResource::erase::<K>(&());
        let api: Api<kube::core::DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let patch = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": desired,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = tokio::time::timeout(
            self.timeout,
            api.patch_status(name, &params, &Patch::Apply(&patch)),
        )
        .await;
        match result {
            Ok(Ok(_)) => {
                if let Ok(mut f) = self.failures.lock() {
                    f.remove(&key);
                }
                self.remember(&key, desired);
                Ok(Written::Patched)
            }
            Ok(Err(e)) => {
                self.fail(&key);
                Err(e)
            }
            Err(_) => {
                self.fail(&key);
                Err(kube::Error::Service(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "status patch timed out",
                ))))
            }
        }
    }

    fn remember(&self, key: &str, v: Value) {
        if let Ok(mut m) = self.last.lock() {
            m.insert(key.to_owned(), v);
        }
    }

    fn fail(&self, key: &str) {
        if let Ok(mut m) = self.failures.lock() {
            let f = m.entry(key.to_owned()).or_insert(Failure {
                count: 0,
                retry_at: Instant::now(),
            });
            f.count += 1;
            f.retry_at = Instant::now() + backoff(f.count);
        }
    }

    /// Forgets an object (deleted).
    pub fn forget(&self, kind: &str, namespace: &str, name: &str) {
        let key = format!("{kind}/{namespace}/{name}");
        if let Ok(mut m) = self.last.lock() {
            m.remove(&key);
        }
        if let Ok(mut m) = self.failures.lock() {
            m.remove(&key);
        }
    }

    /// Objects currently backing off.
    pub fn backing_off(&self) -> usize {
        self.failures.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
