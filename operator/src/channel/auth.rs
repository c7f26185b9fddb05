//! Who may use the channel: bearer tokens checked by Kubernetes TokenReview (in cluster) or
//! against one static token (local mode), then authorized by an allow-list.
//!
//! Tokens are never logged or kept: the TokenReview cache is keyed by their SHA-256.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User name, e.g. `system:serviceaccount:switchyard-system:switchyard-dataplane`.
    pub username: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl Identity {
    /// The ServiceAccount `(namespace, name)` when the caller is one.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        let rest = self.username.strip_prefix("system:serviceaccount:")?;
        let (ns, name) = rest.split_once(':')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
    }
}

/// Why a caller was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No valid credential (HTTP 401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Valid credential, not allowed here (HTTP 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The decision could not be made now, e.g. the API server is unreachable (HTTP 503).
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}

/// Decides whether a bearer token may use the channel.
pub trait Authenticator: Send + Sync + fmt::Debug + 'static {
    /// Checks `token` (without the `Bearer ` prefix). Implementations must not log it.
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>>;
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests without an early exit.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Local mode: one shared token. The comparison is constant-time (over SHA-256 digests, so the
/// token's length does not leak either).
pub struct StaticTokenAuthenticator {
    digest: [u8; 32],
}

impl fmt::Debug for StaticTokenAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticTokenAuthenticator(<redacted>)")
    }
}

impl StaticTokenAuthenticator {
    /// The identity given to holders of the static token.
    pub const USERNAME: &'static str = "switchyard:static-token";

    /// Accepts exactly `token`.
    pub fn new(token: impl AsRef<str>) -> Self {
        Self {
            digest: sha256(token.as_ref()),
        }
    }

    /// Reads the token from a file (surrounding whitespace trimmed).
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let token = text.trim();
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: empty token file", path.display()),
            ));
        }
        Ok(Self::new(token))
    }
}

impl Authenticator for StaticTokenAuthenticator {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>> {
        let ok = same_digest(&sha256(token), &self.digest);
        Box::pin(async move {
            if ok {
                Ok(Identity {
                    username: Self::USERNAME.to_owned(),
                    groups: Vec::new(),
                })
            } else {
                Err(AuthError::Unauthenticated("invalid token".into()))
            }
        })
    }
}

/// Which authenticated callers may use the channel: ServiceAccounts by `namespace/name` and
/// every ServiceAccount of some namespaces. An empty list allows nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    service_accounts: BTreeSet<String>,
    namespaces: BTreeSet<String>,
}

impl AllowList {
    /// Allows nobody yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also allows the ServiceAccount `namespace/name`.
    pub fn service_account(mut self, key: impl Into<String>) -> Self {
        self.service_accounts.insert(key.into());
        self
    }

    /// Also allows every ServiceAccount of `namespace`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespaces.insert(namespace.into());
        self
    }

    /// Whether `identity` is allowed.
    pub fn allows(&self, identity: &Identity) -> bool {
        identity.service_account().is_some_and(|(ns, name)| {
            self.namespaces.contains(ns) || self.service_accounts.contains(&format!("{ns}/{name}"))
        })
    }
}

/// The outcome of one review, as cached.
#[derive(Clone, Debug)]
enum Reviewed {
    Authenticated(Identity),
    Rejected(String),
}

#[derive(Debug)]
struct CacheEntry {
    at: Instant,
    reviewed: Reviewed,
}

/// In-cluster authentication: each token is sent to the API server in a TokenReview (v1), the
/// answer cached for a minute by the token's SHA-256 (rejections for at most 10 s), and the
/// authenticated user checked against an [`AllowList`] (the channel) or accepted as is
/// ([`TokenReviewAuthenticator::any_user`]: the REST facade, which authorizes each request with
/// a SubjectAccessReview instead).
///
/// The operator's ServiceAccount needs `create` on `tokenreviews.authentication.k8s.io`.
pub struct TokenReviewAuthenticator {
    client: kube::Client,
    audiences: Vec<String>,
    allow: Option<AllowList>,
    ttl: Duration,
    capacity: usize,
    cache: Mutex<HashMap<[u8; 32], CacheEntry>>,
}

impl fmt::Debug for TokenReviewAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReviewAuthenticator")
            .field("audiences", &self.audiences)
            .field("allow", &self.allow)
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// How long a rejection is remembered at most.
const REJECTION_TTL: Duration = Duration::from_secs(10);

impl TokenReviewAuthenticator {
    /// Reviews with `client`, allowing the callers in `allow`; 60 s cache of 4096 entries, the
    /// API server's default audience.
    pub fn new(client: kube::Client, allow: AllowList) -> Self {
        Self {
            client,
            audiences: Vec::new(),
            allow: Some(allow),
            ttl: Duration::from_secs(60),
            capacity: 4096,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Reviews with `client` and accepts every authenticated user (authorization is the
    /// caller's business); same cache as [`TokenReviewAuthenticator::new`].
    pub fn any_user(client: kube::Client) -> Self {
        Self {
            allow: None,
            ..Self::new(client, AllowList::new())
        }
    }

    /// Requires tokens issued for one of `audiences` (e.g. a projected token with audience
    /// `switchyard`).
    pub fn with_audiences(mut self, audiences: Vec<String>) -> Self {
        self.audiences = audiences;
        self
    }

    /// Sets how long answers are cached and how many are kept.
    pub fn with_cache(mut self, ttl: Duration, capacity: usize) -> Self {
        self.ttl = ttl;
        self.capacity = capacity.max(1);
        self
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Reviewed> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(key)?;
        let ttl = match entry.reviewed {
            Reviewed::Authenticated(_) => self.ttl,
            Reviewed::Rejected(_) => self.ttl.min(REJECTION_TTL),
        };
        (entry.at.elapsed() < ttl).then(|| entry.reviewed.clone())
    }

    fn remember(&self, key: [u8; 32], reviewed: Reviewed) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.capacity && !cache.contains_key(&key) {
            let ttl = self.ttl;
            cache.retain(|_, e| e.at.elapsed() < ttl);
            if cache.len() >= self.capacity {
                // Still full of live entries: drop the oldest.
                if let Some(oldest) = cache.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| *k) {
                    cache.remove(&oldest);
                }
            }
        }
        cache.insert(
            key,
            CacheEntry {
                at: Instant::now(),
                reviewed,
            },
        );
    }

    async fn review(&self, token: &str) -> Result<Reviewed, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "TokenReview failed; refusing data planes until it works");
                AuthError::Unavailable("token review failed".into())
            })?;
        let Some(status) = answer.status else {
            return Ok(Reviewed::Rejected("token review without status".into()));
        };
        if status.authenticated != Some(true) {
            let why = status
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "token not authenticated".into());
            return Ok(Reviewed::Rejected(why));
        }
        if !self.audiences.is_empty()
            && let Some(granted) = &status.audiences
            && !granted.iter().any(|a| self.audiences.contains(a))
        {
            return Ok(Reviewed::Rejected(
                "token not issued for this audience".into(),
            ));
        }
        let Some(user) = status
            .user
            .filter(|u| u.username.as_deref().is_some_and(|n| !n.is_empty()))
        else {
            return Ok(Reviewed::Rejected("token review without a user".into()));
        };
        Ok(Reviewed::Authenticated(Identity {
            username: user.username.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
        }))
    }
}

impl Authenticator for TokenReviewAuthenticator {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(async move {
            let key = sha256(token);
            let reviewed = match self.cached(&key) {
                Some(r) => r,
                None => {
                    let r = self.review(token).await?;
                    self.remember(key, r.clone());
                    r
                }
            };
            match reviewed {
                Reviewed::Rejected(why) => Err(AuthError::Unauthenticated(why)),
                Reviewed::Authenticated(identity)
                    if self.allow.as_ref().is_none_or(|a| a.allows(&identity)) =>
                {
                    Ok(identity)
                }
                Reviewed::Authenticated(identity) => Err(AuthError::Forbidden(format!(
                    "{} may not connect to the snapshot channel",
                    identity.username
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(username: &str) -> Identity {
        Identity {
            username: username.into(),
            groups: vec![],
        }
    }

    #[test]
    fn service_account_names() {
        assert_eq!(
            id("system:serviceaccount:ns:dp").service_account(),
            Some(("ns", "dp"))
        );
        assert_eq!(id("system:serviceaccount:ns:").service_account(), None);
        assert_eq!(id("alice").service_account(), None);
        assert_eq!(id("system:serviceaccount:a:b:c").service_account(), None);
    }

    #[test]
    fn allow_list() {
        let allow = AllowList::new().service_account("ns/dp").namespace("edge");
        assert!(allow.allows(&id("system:serviceaccount:ns:dp")));
        assert!(!allow.allows(&id("system:serviceaccount:ns:other")));
        assert!(allow.allows(&id("system:serviceaccount:edge:anything")));
        assert!(!allow.allows(&id("ns/dp")));
        assert!(!AllowList::new().allows(&id("system:serviceaccount:ns:dp")));
    }

    #[tokio::test]
    async fn static_token() {
        let a = StaticTokenAuthenticator::new("s3cret");
        assert!(a.authenticate("s3cret").await.is_ok());
        assert!(matches!(
            a.authenticate("s3cret ").await,
            Err(AuthError::Unauthenticated(_))
        ));
        assert!(!format!("{a:?}").contains("s3cret"));
    }
}
