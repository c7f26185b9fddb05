//! Upstream HTTP clients. `reqwest` sets the connect timeout per client, not per request, so
//! per-Provider/Backend/RouterPolicy `timeouts.connect` is served by one client per distinct
//! connect timeout (each with its own connection pool), created on first use. The set of values
//! comes from the snapshot and is small; it is capped at [`MAX_CLIENTS`] all the same (beyond
//! that, the default client is used and a warning is logged once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::egress::EgressResolver;

/// Most distinct connect timeouts served by their own client.
pub const MAX_CLIENTS: usize = 16;

/// The upstream clients. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Clients {
    default_connect: Duration,
    default: reqwest::Client,
    resolver: EgressResolver,
    by_connect: Arc<Mutex<HashMap<Duration, reqwest::Client>>>,
}

impl Clients {
    /// Clients resolving through `resolver`, with `default_connect` when nothing overrides it.
    pub fn new(default_connect: Duration, resolver: EgressResolver) -> anyhow::Result<Self> {
        Ok(Self {
            default_connect,
            default: crate::http_client_with_resolver(default_connect, resolver.clone())?,
            resolver,
            by_connect: Arc::default(),
        })
    }

    /// The client for `connect` (`None`: the default).
    pub fn get(&self, connect: Option<Duration>) -> reqwest::Client {
        let Some(connect) = connect.filter(|c| *c != self.default_connect) else {
            return self.default.clone();
        };
        let mut map = self
            .by_connect
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(&connect) {
            return c.clone();
        }
        if map.len() >= MAX_CLIENTS {
            tracing::warn!(
                connect_ms = connect.as_millis() as u64,
                "too many distinct connect timeouts; using the default connect timeout"
            );
            return self.default.clone();
        }
        match crate::http_client_with_resolver(connect, self.resolver.clone()) {
            Ok(c) => {
                map.insert(connect, c.clone());
                c
            }
            Err(e) => {
                tracing::error!(error = %e, "building an upstream client; using the default");
                self.default.clone()
            }
        }
    }
}
