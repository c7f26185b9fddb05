//! What an authenticated caller may do: Kubernetes SubjectAccessReview (in cluster) or
//! everything (the static admin token of local mode). Used by the REST facade; the channel
//! itself authorizes data planes with an [`super::AllowList`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::auth::{AuthError, Identity};

/// An action on a resource, as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Action {
    /// `get`, `list`, …
    pub verb: String,
    /// API group, e.g. `switchyard.dev`.
    pub group: String,
    /// Resource plural, e.g. `workspaces`.
    pub resource: String,
    /// Namespace; `None`: all namespaces (cluster scope).
    pub namespace: Option<String>,
    /// Object name; `None`: any.
    pub name: Option<String>,
}

impl Action {
    /// `verb` on `resource` of `switchyard.dev`, cluster-wide and for any name.
    pub fn switchyard(verb: &str, resource: &str) -> Self {
        Self {
            verb: verb.to_owned(),
            group: switchyard_crds::GROUP.to_owned(),
            resource: resource.to_owned(),
            namespace: None,
            name: None,
        }
    }

    /// The same action in `namespace`.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The same action on the object `name`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}.{}", self.verb, self.resource, self.group)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns:?}"),
            None => f.write_str(" in all namespaces"),
        }
    }
}

/// Decides whether an authenticated caller may perform an action.
pub trait Authorizer: Send + Sync + fmt::Debug + 'static {
    /// `Ok(true)` when allowed, `Ok(false)` when not, an error when the decision cannot be made
    /// now (answer 503).
    fn allowed<'a>(
        &'a self,
        who: &'a Identity,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<bool, AuthError>>;
}

/// Allows everything: for the static admin token of local mode, which has no RBAC to ask.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn allowed<'a>(
        &'a self,
        _who: &'a Identity,
        _action: &'a Action,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async { Ok(true) })
    }
}

type CacheKey = (String, Vec<String>, Action);

/// In-cluster authorization: a SubjectAccessReview (v1) per (user, groups, action), the answer
/// cached for 10 s (so RBAC changes apply within seconds, and a page of namespaces costs one
/// review each at most every 10 s).
///
/// The operator's ServiceAccount needs `create` on
/// `subjectaccessreviews.authorization.k8s.io`.
pub struct SubjectAccessReviewAuthorizer {
    client: kube::Client,
    ttl: Duration,
    capacity: usize,
    cache: Mutex<HashMap<CacheKey, (Instant, bool)>>,
}

impl fmt::Debug for SubjectAccessReviewAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectAccessReviewAuthorizer")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl SubjectAccessReviewAuthorizer {
    /// Reviews with `client`; 10 s cache of 8192 answers.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            ttl: Duration::from_secs(10),
            capacity: 8192,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Sets how long answers are cached and how many are kept.
    pub fn with_cache(mut self, ttl: Duration, capacity: usize) -> Self {
        self.ttl = ttl;
        self.capacity = capacity.max(1);
        self
    }

    fn cached(&self, key: &CacheKey) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (at, allowed) = cache.get(key)?;
        (at.elapsed() < self.ttl).then_some(*allowed)
    }

    fn remember(&self, key: CacheKey, allowed: bool) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.capacity && !cache.contains_key(&key) {
            let ttl = self.ttl;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            if cache.len() >= self.capacity
                && let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(key, (Instant::now(), allowed));
    }

    async fn review(&self, who: &Identity, action: &Action) -> Result<bool, AuthError> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(who.username.clone()),
                groups: (!who.groups.is_empty()).then(|| who.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(action.verb.clone()),
                    group: Some(action.group.clone()),
                    resource: Some(action.resource.clone()),
                    namespace: action.namespace.clone(),
                    name: action.name.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "SubjectAccessReview failed");
                AuthError::Unavailable("access review failed".into())
            })?;
        Ok(answer
            .status
            .is_some_and(|s| s.allowed && s.denied != Some(true)))
    }
}

impl Authorizer for SubjectAccessReviewAuthorizer {
    fn allowed<'a>(
        &'a self,
        who: &'a Identity,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async move {
            let key = (who.username.clone(), who.groups.clone(), action.clone());
            if let Some(allowed) = self.cached(&key) {
                return Ok(allowed);
            }
            let allowed = self.review(who, action).await?;
            self.remember(key, allowed);
            Ok(allowed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_print_for_error_messages() {
        let a = Action::switchyard("get", "workspaces")
            .in_namespace("team-a")
            .named("research");
        assert_eq!(
            a.to_string(),
            "get workspaces.switchyard.dev \"research\" in namespace \"team-a\""
        );
        assert_eq!(
            Action::switchyard("list", "providers").to_string(),
            "list providers.switchyard.dev in all namespaces"
        );
    }
}
