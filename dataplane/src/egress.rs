//! Egress safety for upstream connections (Provider and Backend endpoints).
//!
//! Every address the upstream client connects to goes through an [`EgressPolicy`]:
//!
//! 1. the **deny list** (`--egress-deny-cidr`) wins over everything;
//! 2. **link-local and cloud metadata** addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254)
//!    are refused unless `--egress-allow-link-local` is set (an allow-list entry does not
//!    unblock them on its own);
//! 3. when an **allow list** (`--egress-allow-cidr`) is given, only addresses inside it pass;
//! 4. anything else (public, private, loopback: in-cluster backends live there) passes.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) and NAT64 well-known-prefix addresses
//! (`64:ff9b::a.b.c.d`) are checked both as written and as the IPv4 address they embed, so
//! `::ffff:169.254.169.254` is refused like `169.254.169.254`, and a deny entry `127.0.0.0/8`
//! also refuses `::ffff:127.0.0.1`.
//!
//! Where the check happens:
//!
//! * [`EgressResolver`] (installed with `ClientBuilder::dns_resolver`) resolves host names and
//!   drops every refused address before the client sees it; when none is left the lookup fails
//!   with an [`EgressError`], which reqwest reports as a connect error. It runs on every new
//!   connection, so a DNS answer that changes later is checked too.
//! * IP-literal URLs (`http://169.254.169.254/`) never reach the resolver: hyper-util connects
//!   to a literal directly. Callers check the URL first with [`EgressPolicy::check_url`]
//!   (no traffic at all), and [`EgressLayer`] (installed with `ClientBuilder::connector_layer`)
//!   checks the peer address of every connection the client opens before any request byte is
//!   written on it (for HTTPS the TLS handshake has already happened at that point), so a
//!   caller that forgets the pre-flight check is still refused.
//!
//! Error messages name the host, the address and the rule; never the URL's path, query or
//! credentials.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connection, HttpInfo};
pub use ipnet::IpNet;

use crate::config::Config;

/// Error type of reqwest's resolver and connector services.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The IPv4 link-local block, which holds the cloud metadata service (169.254.169.254).
pub const LINK_LOCAL_V4: IpNet = IpNet::V4(ipnet::Ipv4Net::new_assert(
    Ipv4Addr::new(169, 254, 0, 0),
    16,
));

/// The IPv6 link-local block.
pub const LINK_LOCAL_V6: IpNet = IpNet::V6(ipnet::Ipv6Net::new_assert(
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
    10,
));

/// The AWS instance metadata service over IPv6.
pub const METADATA_V6: IpNet = IpNet::V6(ipnet::Ipv6Net::new_assert(
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254),
    128,
));

/// Ranges refused unless link-local egress is allowed.
pub const LINK_LOCAL_AND_METADATA: [IpNet; 3] = [LINK_LOCAL_V4, LINK_LOCAL_V6, METADATA_V6];

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Inside this `--egress-deny-cidr` entry.
    Denied(IpNet),
    /// Inside this link-local / metadata range and `--egress-allow-link-local` is off.
    LinkLocal(IpNet),
    /// An allow list is set and the address is outside every entry.
    NotAllowed,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Denied(net) => write!(f, "denied by --egress-deny-cidr {net}"),
            Rule::LinkLocal(net) => write!(
                f,
                "in the link-local/metadata range {net} (--egress-allow-link-local is off)"
            ),
            Rule::NotAllowed => f.write_str("outside every --egress-allow-cidr entry"),
        }
    }
}

/// One refused address and the rule that refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The address.
    pub addr: IpAddr,
    /// The rule.
    pub rule: Rule,
}

/// A refused destination: the host (name or literal) and every address refused for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressError {
    /// The host as the URL names it (no port, path or credentials).
    pub host: String,
    /// The refused addresses (at least one).
    pub refused: Vec<Refusal>,
}

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "egress to {} refused: ", self.host)?;
        for (i, r) in self.refused.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} is {}", r.addr, r.rule)?;
        }
        Ok(())
    }
}

impl std::error::Error for EgressError {}

/// Which addresses upstream connections may reach (see the module docs for the rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    allow_link_local: bool,
}

impl EgressPolicy {
    /// A policy from allow and deny lists (an empty allow list allows any address not refused
    /// otherwise) and whether link-local / metadata addresses are allowed.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>, allow_link_local: bool) -> Self {
        EgressPolicy {
            allow,
            deny,
            allow_link_local,
        }
    }

    /// The policy the `--egress-*` flags describe.
    pub fn from_config(config: &Config) -> Self {
        EgressPolicy::new(
            config.egress_allow_cidr.clone(),
            config.egress_deny_cidr.clone(),
            config.egress_allow_link_local,
        )
    }

    /// Checks one address: `Err` carries the rule that refuses it.
    pub fn check(&self, addr: IpAddr) -> Result<(), Rule> {
        let views = views(addr);
        let views = views.iter().flatten();
        if let Some(net) = self
            .deny
            .iter()
            .find(|net| views.clone().any(|a| net.contains(a)))
        {
            return Err(Rule::Denied(*net));
        }
        if !self.allow_link_local
            && let Some(net) = LINK_LOCAL_AND_METADATA
                .iter()
                .find(|net| views.clone().any(|a| net.contains(a)))
        {
            return Err(Rule::LinkLocal(*net));
        }
        if !self.allow.is_empty()
            && !self
                .allow
                .iter()
                .any(|net| views.clone().any(|a| net.contains(a)))
        {
            return Err(Rule::NotAllowed);
        }
        Ok(())
    }

    /// Checks one address reached for `host`, as an [`EgressError`].
    pub fn check_addr(&self, host: &str, addr: IpAddr) -> Result<(), EgressError> {
        self.check(addr).map_err(|rule| EgressError {
            host: host.to_owned(),
            refused: vec![Refusal { addr, rule }],
        })
    }

    /// Pre-flight check of a URL host: an IP literal (`169.254.169.254`, `[fe80::1]`,
    /// `::ffff:a9fe:a9fe`) is checked here, since reqwest connects to literals without
    /// resolving them; a host name passes (the [`EgressResolver`] checks what it resolves to).
    pub fn check_host(&self, host: &str) -> Result<(), EgressError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(addr) => self.check_addr(host, addr),
            Err(_) => Ok(()),
        }
    }

    /// Pre-flight check of an upstream URL (see [`EgressPolicy::check_host`]). Use it before
    /// sending a request: it refuses IP literals without any network traffic.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), EgressError> {
        // `host_str` writes IPv6 literals in brackets; the URL parser has already normalised
        // other IPv4 spellings (`http://2852039166/`, `0xa9.254.169.254`) to dotted form.
        match url.host_str() {
            Some(host) => self.check_host(host),
            None => Ok(()),
        }
    }

    /// Splits resolved addresses into the allowed ones and the refusals.
    pub fn filter(
        &self,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> (Vec<SocketAddr>, Vec<Refusal>) {
        let mut allowed = Vec::new();
        let mut refused = Vec::new();
        for sa in addrs {
            match self.check(sa.ip()) {
                Ok(()) => allowed.push(sa),
                Err(rule) => refused.push(Refusal {
                    addr: sa.ip(),
                    rule,
                }),
            }
        }
        (allowed, refused)
    }
}

/// The address as written, and the IPv4 address an IPv4-mapped (`::ffff:0:0/96`) or NAT64
/// well-known-prefix (`64:ff9b::/96`) IPv6 address embeds.
fn views(addr: IpAddr) -> [Option<IpAddr>; 2] {
    let embedded = match addr {
        IpAddr::V4(_) => None,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().or_else(|| {
            let s = v6.segments();
            (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                Ipv4Addr::new(a, b, c, d)
            })
        }),
    };
    [Some(addr), embedded.map(IpAddr::V4)]
}

/// Future of a [`LookupFn`].
pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// A host-name lookup (the seam tests use to fake DNS answers). Ports of the returned
/// addresses are ignored (reqwest sets the URL's).
pub type LookupFn = dyn Fn(String) -> LookupFuture + Send + Sync;

/// The system lookup (`tokio::net::lookup_host`).
pub fn system_lookup(host: String) -> LookupFuture {
    Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
}

/// A `reqwest` DNS resolver that resolves with a [`LookupFn`] and drops every address the
/// [`EgressPolicy`] refuses; when none is left, the lookup fails with an [`EgressError`].
#[derive(Clone)]
pub struct EgressResolver {
    policy: Arc<EgressPolicy>,
    lookup: Arc<LookupFn>,
}

impl fmt::Debug for EgressResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl EgressResolver {
    /// Resolves with the system resolver.
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        EgressResolver::with_lookup(policy, Arc::new(system_lookup))
    }

    /// Resolves with `lookup` (tests: fake DNS answers).
    pub fn with_lookup(policy: Arc<EgressPolicy>, lookup: Arc<LookupFn>) -> Self {
        EgressResolver { policy, lookup }
    }

    /// The policy.
    pub fn policy(&self) -> &Arc<EgressPolicy> {
        &self.policy
    }

    /// Resolves `host` and filters the answer through the policy.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
        let addrs = (self.lookup)(host.to_owned()).await?;
        let (allowed, refused) = self.policy.filter(addrs);
        if allowed.is_empty() {
            if refused.is_empty() {
                return Err(Box::new(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host} resolved to no address"),
                )));
            }
            return Err(Box::new(EgressError {
                host: host.to_owned(),
                refused,
            }));
        }
        if !refused.is_empty() {
            let error = EgressError {
                host: host.to_owned(),
                refused,
            };
            tracing::warn!(%error, "some resolved addresses dropped by the egress policy");
        }
        Ok(allowed)
    }
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = this.resolve_host(&host).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A `reqwest` connector layer that checks the peer address of every new connection against
/// the policy before the connection is used (the backstop for IP-literal URLs, which skip the
/// resolver). Connections whose peer address is unknown pass.
#[derive(Debug, Clone)]
pub struct EgressLayer {
    policy: Arc<EgressPolicy>,
}

impl EgressLayer {
    /// A layer checking against `policy`.
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        EgressLayer { policy }
    }
}

impl<S> tower::Layer<S> for EgressLayer {
    type Service = EgressConnect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EgressConnect {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service of [`EgressLayer`].
#[derive(Debug, Clone)]
pub struct EgressConnect<S> {
    inner: S,
    policy: Arc<EgressPolicy>,
}

impl<S, Req> tower::Service<Req> for EgressConnect<S>
where
    S: tower::Service<Req, Error = BoxError>,
    S::Response: Connection + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let connecting = self.inner.call(req);
        let policy = self.policy.clone();
        Box::pin(async move {
            let conn = connecting.await?;
            let mut extras = http::Extensions::new();
            conn.connected().get_extras(&mut extras);
            if let Some(info) = extras.get::<HttpInfo>() {
                let peer = info.remote_addr();
                policy.check_addr(&peer.ip().to_string(), peer.ip())?;
            }
            Ok(conn)
        })
    }
}

/// Installs the egress checks on a client builder: the filtering resolver and the connection
/// backstop.
pub fn install(
    builder: reqwest::ClientBuilder,
    resolver: EgressResolver,
) -> reqwest::ClientBuilder {
    let layer = EgressLayer::new(resolver.policy().clone());
    builder.dns_resolver(resolver).connector_layer(layer)
}
