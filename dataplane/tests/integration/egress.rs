//! Egress policy: the rule table (IPv4, IPv6, IPv4-mapped and NAT64 forms, CIDR edges), CIDR
//! and flag parsing, and the upstream client end to end against local servers: loopback
//! allowed by default and refused when denied, host names resolving to the metadata address
//! (through the resolver seam), DNS answers that change, IP-literal URLs (pre-flight check and
//! connection backstop), and redirects not followed.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use switchyard_dataplane::config::{Config, parse_cidr};
use switchyard_dataplane::egress::{
    EgressError, EgressPolicy, EgressResolver, IpNet, LINK_LOCAL_V4, LINK_LOCAL_V6, LookupFn,
    LookupFuture, METADATA_V6, Refusal, Rule,
};
use switchyard_dataplane::{http_client, http_client_with_resolver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- helpers

fn net(s: &str) -> IpNet {
    parse_cidr(s).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn policy(allow: &[&str], deny: &[&str], allow_link_local: bool) -> EgressPolicy {
    EgressPolicy::new(
        allow.iter().map(|s| net(s)).collect(),
        deny.iter().map(|s| net(s)).collect(),
        allow_link_local,
    )
}

/// A resolver seam answering every name with `addrs` (whatever `answer` holds at lookup time).
fn fake_dns(answer: Arc<Mutex<Vec<IpAddr>>>) -> Arc<LookupFn> {
    Arc::new(move |_host: String| -> LookupFuture {
        let addrs: Vec<SocketAddr> = answer
            .lock()
            .unwrap()
            .iter()
            .map(|a| SocketAddr::new(*a, 0))
            .collect();
        Box::pin(async move { Ok(addrs) })
    })
}

/// The upstream client as the data plane builds it (reqwest is built without a default TLS
/// provider, as in the data plane binary).
fn client(policy: EgressPolicy) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    http_client(Duration::from_secs(2), Arc::new(policy)).unwrap()
}

fn client_with_dns(policy: EgressPolicy, answer: &[&str]) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let answer = Arc::new(Mutex::new(answer.iter().map(|s| ip(s)).collect()));
    let resolver = EgressResolver::with_lookup(Arc::new(policy), fake_dns(answer));
    http_client_with_resolver(Duration::from_secs(2), resolver).unwrap()
}

/// The [`EgressError`] somewhere in a reqwest error's source chain.
fn egress_error(e: &reqwest::Error) -> Option<EgressError> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(found) = s.downcast_ref::<EgressError>() {
            return Some(found.clone());
        }
        source = s.source();
    }
    None
}

/// Every message in a reqwest error's source chain, joined.
fn chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request with `response` and closing
/// the connection; it counts connections, request bytes read, and finished connections.
struct Server {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    request_bytes: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

impl Server {
    async fn start(response: String) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let request_bytes = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let (c, b, d) = (conns.clone(), request_bytes.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (b, d, response) = (b.clone(), d.clone(), response.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk))
                            .await
                        {
                            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                            Ok(Ok(n)) => {
                                b.fetch_add(n, Ordering::SeqCst);
                                buf.extend_from_slice(&chunk[..n]);
                                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                                    let _ = sock.write_all(response.as_bytes()).await;
                                    let _ = sock.shutdown().await;
                                    break;
                                }
                            }
                        }
                    }
                    d.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Server {
            addr,
            conns,
            request_bytes,
            done,
        }
    }

    async fn ok() -> Server {
        Server::start(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_owned(),
        )
        .await
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    /// Waits until every accepted connection has finished (read EOF or answered).
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.done.load(Ordering::SeqCst) < self.conns() {
            assert!(
                Instant::now() < deadline,
                "server connections did not finish"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

// ---------------------------------------------------------------- rule table

#[test]
fn default_policy_table() {
    let p = EgressPolicy::default();
    let allowed = [
        // Public, private and loopback: in-cluster backends live in the last two.
        "8.8.8.8",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "100.64.0.1",
        "::1",
        "2001:4860:4860::8888",
        "fd12:3456::1",
        // Just outside 169.254.0.0/16.
        "169.253.255.255",
        "169.255.0.0",
        // Just outside fe80::/10.
        "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fec0::1",
        // Next to the IPv6 metadata address.
        "fd00:ec2::253",
        "fd00:ec2::255",
        // Mapped loopback.
        "::ffff:127.0.0.1",
        // IPv4-compatible (deprecated, not routed to IPv4): checked as written.
        "::169.254.169.254",
    ];
    for a in allowed {
        assert_eq!(p.check(ip(a)), Ok(()), "{a} should be allowed by default");
    }
    let refused = [
        ("169.254.169.254", LINK_LOCAL_V4),
        ("169.254.0.0", LINK_LOCAL_V4),
        ("169.254.255.255", LINK_LOCAL_V4),
        ("169.254.170.2", LINK_LOCAL_V4),
        ("fe80::1", LINK_LOCAL_V6),
        ("fe80::a9fe:a9fe", LINK_LOCAL_V6),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LINK_LOCAL_V6),
        ("fd00:ec2::254", METADATA_V6),
        ("::ffff:169.254.169.254", LINK_LOCAL_V4),
        ("::ffff:a9fe:0", LINK_LOCAL_V4),
        ("64:ff9b::169.254.169.254", LINK_LOCAL_V4),
    ];
    for (a, range) in refused {
        assert_eq!(
            p.check(ip(a)),
            Err(Rule::LinkLocal(range)),
            "{a} should be refused as link-local"
        );
    }
}

#[test]
fn allow_link_local_flag_unblocks_link_local_and_metadata() {
    let p = policy(&[], &[], true);
    for a in [
        "169.254.169.254",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
    ] {
        assert_eq!(p.check(ip(a)), Ok(()), "{a}");
    }
}

#[test]
fn deny_list_wins_over_allow_list_and_link_local_flag() {
    let p = policy(
        &["10.0.0.0/8", "169.254.0.0/16"],
        &["10.1.0.0/16", "169.254.169.254"],
        true,
    );
    assert_eq!(p.check(ip("10.2.3.4")), Ok(()));
    assert_eq!(
        p.check(ip("10.1.2.3")),
        Err(Rule::Denied(net("10.1.0.0/16")))
    );
    assert_eq!(
        p.check(ip("10.1.255.255")),
        Err(Rule::Denied(net("10.1.0.0/16")))
    );
    assert_eq!(p.check(ip("10.2.0.0")), Ok(()));
    assert_eq!(p.check(ip("169.254.170.2")), Ok(()));
    assert_eq!(
        p.check(ip("169.254.169.254")),
        Err(Rule::Denied(net("169.254.169.254/32")))
    );
    assert_eq!(p.check(ip("11.0.0.1")), Err(Rule::NotAllowed));
    assert_eq!(p.check(ip("127.0.0.1")), Err(Rule::NotAllowed));
    assert_eq!(p.check(ip("::1")), Err(Rule::NotAllowed));
}

#[test]
fn allow_list_alone_does_not_unblock_link_local() {
    let p = policy(&["169.254.0.0/16", "0.0.0.0/0"], &[], false);
    assert_eq!(
        p.check(ip("169.254.169.254")),
        Err(Rule::LinkLocal(LINK_LOCAL_V4))
    );
    assert_eq!(p.check(ip("1.2.3.4")), Ok(()));
}

#[test]
fn deny_and_allow_match_ipv4_mapped_and_nat64_forms() {
    let p = policy(&[], &["127.0.0.0/8"], false);
    assert_eq!(
        p.check(ip("127.0.0.1")),
        Err(Rule::Denied(net("127.0.0.0/8")))
    );
    assert_eq!(
        p.check(ip("::ffff:127.0.0.1")),
        Err(Rule::Denied(net("127.0.0.0/8")))
    );
    assert_eq!(
        p.check(ip("64:ff9b::7f00:1")),
        Err(Rule::Denied(net("127.0.0.0/8")))
    );
    assert_eq!(p.check(ip("::1")), Ok(()));

    // A deny entry written in IPv6 matches the mapped form as written, not plain IPv4.
    let p = policy(&[], &["::ffff:0:0/96"], false);
    assert_eq!(
        p.check(ip("::ffff:1.2.3.4")),
        Err(Rule::Denied(net("::ffff:0:0/96")))
    );
    assert_eq!(p.check(ip("1.2.3.4")), Ok(()));

    // An IPv4 allow list admits the mapped form of an address inside it.
    let p = policy(&["10.0.0.0/8"], &[], false);
    assert_eq!(p.check(ip("::ffff:10.0.0.1")), Ok(()));
    assert_eq!(p.check(ip("::ffff:11.0.0.1")), Err(Rule::NotAllowed));
}

#[test]
fn cidr_edges() {
    // /0 covers one family only.
    let p = policy(&["0.0.0.0/0"], &[], false);
    assert_eq!(p.check(ip("255.255.255.255")), Ok(()));
    assert_eq!(p.check(ip("0.0.0.0")), Ok(()));
    assert_eq!(p.check(ip("2001:db8::1")), Err(Rule::NotAllowed));
    let p = policy(&["::/0"], &[], false);
    assert_eq!(p.check(ip("2001:db8::1")), Ok(()));
    assert_eq!(p.check(ip("1.2.3.4")), Err(Rule::NotAllowed));
    // /32 and /128 are exact.
    let p = policy(&["10.0.0.5/32", "2001:db8::5/128"], &[], false);
    assert_eq!(p.check(ip("10.0.0.5")), Ok(()));
    assert_eq!(p.check(ip("10.0.0.4")), Err(Rule::NotAllowed));
    assert_eq!(p.check(ip("10.0.0.6")), Err(Rule::NotAllowed));
    assert_eq!(p.check(ip("2001:db8::5")), Ok(()));
    assert_eq!(p.check(ip("2001:db8::6")), Err(Rule::NotAllowed));
    // Odd prefix lengths: first and last address in, neighbours out.
    let p = policy(&["192.168.4.0/23", "2001:db8:8000::/33"], &[], false);
    assert_eq!(p.check(ip("192.168.4.0")), Ok(()));
    assert_eq!(p.check(ip("192.168.5.255")), Ok(()));
    assert_eq!(p.check(ip("192.168.3.255")), Err(Rule::NotAllowed));
    assert_eq!(p.check(ip("192.168.6.0")), Err(Rule::NotAllowed));
    assert_eq!(p.check(ip("2001:db8:8000::")), Ok(()));
    assert_eq!(
        p.check(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")),
        Ok(())
    );
    assert_eq!(
        p.check(ip("2001:db8:7fff:ffff:ffff:ffff:ffff:ffff")),
        Err(Rule::NotAllowed)
    );
}

#[test]
fn parse_cidr_table() {
    let ok = [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        (" 192.168.0.0/16 ", "192.168.0.0/16"),
        ("1.2.3.4", "1.2.3.4/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("::1", "::1/128"),
        ("fd00::/8", "fd00::/8"),
        ("fe80::1/10", "fe80::/10"),
        ("::ffff:169.254.0.0/112", "::ffff:169.254.0.0/112"),
        ("::/0", "::/0"),
    ];
    for (input, want) in ok {
        assert_eq!(
            parse_cidr(input).map(|n| n.to_string()),
            Ok(want.to_owned()),
            "{input}"
        );
    }
    for bad in [
        "",
        " ",
        "10.0.0.0/33",
        "::/129",
        "10.0.0/8",
        "1.2.3.4/",
        "/8",
        "example.com",
        "10.0.0.0/-1",
        "[::1]",
    ] {
        assert!(parse_cidr(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn flags_build_the_policy() {
    let config = Config::try_parse_from([
        "switchyard-dataplane",
        "--manifests",
        "/tmp/none",
        "--egress-allow-cidr",
        "10.0.0.0/8,192.168.0.0/16",
        "--egress-allow-cidr",
        "fd00::/8",
        "--egress-deny-cidr",
        "10.9.0.0/16",
        "--egress-allow-link-local",
    ])
    .unwrap();
    assert_eq!(
        config.egress_allow_cidr,
        vec![net("10.0.0.0/8"), net("192.168.0.0/16"), net("fd00::/8")]
    );
    assert_eq!(config.egress_deny_cidr, vec![net("10.9.0.0/16")]);
    assert!(config.egress_allow_link_local);
    let p = EgressPolicy::from_config(&config);
    assert_eq!(
        p,
        policy(
            &["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"],
            &["10.9.0.0/16"],
            true
        )
    );

    let defaults =
        Config::try_parse_from(["switchyard-dataplane", "--manifests", "/tmp/none"]).unwrap();
    assert!(defaults.egress_allow_cidr.is_empty());
    assert!(defaults.egress_deny_cidr.is_empty());
    assert!(!defaults.egress_allow_link_local);
    assert_eq!(
        EgressPolicy::from_config(&defaults),
        EgressPolicy::default()
    );

    let bad = Config::try_parse_from([
        "switchyard-dataplane",
        "--manifests",
        "/tmp/none",
        "--egress-deny-cidr",
        "10.0.0.0/40",
    ]);
    assert!(bad.is_err());
}

#[test]
fn error_message_names_host_address_and_rule() {
    let e = EgressError {
        host: "metadata.example".to_owned(),
        refused: vec![
            Refusal {
                addr: ip("169.254.169.254"),
                rule: Rule::LinkLocal(LINK_LOCAL_V4),
            },
            Refusal {
                addr: ip("10.1.2.3"),
                rule: Rule::Denied(net("10.0.0.0/8")),
            },
            Refusal {
                addr: ip("8.8.8.8"),
                rule: Rule::NotAllowed,
            },
        ],
    };
    assert_eq!(
        e.to_string(),
        "egress to metadata.example refused: 169.254.169.254 is in the link-local/metadata \
         range 169.254.0.0/16 (--egress-allow-link-local is off); 10.1.2.3 is denied by \
         --egress-deny-cidr 10.0.0.0/8; 8.8.8.8 is outside every --egress-allow-cidr entry"
    );
}

// ---------------------------------------------------------------- IP literals (pre-flight)

#[test]
fn ip_literal_urls_are_refused_by_the_preflight_check() {
    let p = EgressPolicy::default();
    let cases = [
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
            "169.254.169.254",
        ),
        // Other spellings the URL parser normalises to the same address.
        ("http://2852039166/", "169.254.169.254", "169.254.169.254"),
        (
            "http://0xa9.0xfe.0xa9.0xfe/",
            "169.254.169.254",
            "169.254.169.254",
        ),
        ("http://[fe80::1]:8080/", "[fe80::1]", "fe80::1"),
        (
            "http://[fd00:ec2::254]/",
            "[fd00:ec2::254]",
            "fd00:ec2::254",
        ),
        (
            "http://[::ffff:169.254.169.254]/",
            "[::ffff:a9fe:a9fe]",
            "::ffff:169.254.169.254",
        ),
    ];
    for (url, host, addr) in cases {
        let err = p.check_url(&url.parse().unwrap()).unwrap_err();
        assert_eq!(err.host, host, "{url}");
        assert_eq!(err.refused.len(), 1, "{url}");
        assert_eq!(err.refused[0].addr, ip(addr), "{url}");
        assert!(matches!(err.refused[0].rule, Rule::LinkLocal(_)), "{url}");
    }
    for url in [
        "https://api.openai.com/v1/chat/completions",
        "http://127.0.0.1:8080/",
        "http://[::1]:8080/",
        "http://10.0.0.1/",
        // Host names pass the pre-flight check: the resolver checks their addresses.
        "http://metadata.google.internal/",
    ] {
        assert_eq!(p.check_url(&url.parse().unwrap()), Ok(()), "{url}");
    }
    // Credentials and query in the URL never reach the message.
    let err = p
        .check_url(
            &"http://user:hunter2@169.254.169.254/x?key=sk-secret"
                .parse()
                .unwrap(),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains("hunter2") && !msg.contains("sk-secret") && !msg.contains("user"));
    assert!(msg.contains("169.254.169.254"));
    // check_host takes bare and bracketed literals.
    assert!(p.check_host("169.254.169.254").is_err());
    assert!(p.check_host("[fe80::1]").is_err());
    assert!(p.check_host("fe80::1").is_err());
    assert!(p.check_host("example.com").is_ok());
}

// ---------------------------------------------------------------- client end to end

#[tokio::test]
async fn loopback_is_allowed_by_default() {
    let server = Server::ok().await;
    let client = client(EgressPolicy::default());
    // System resolver, then an IP literal.
    for host in ["localhost", "127.0.0.1"] {
        let resp = client
            .get(format!("http://{host}:{}/", server.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{host}");
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    // Through the resolver seam.
    let client = client_with_dns(EgressPolicy::default(), &["127.0.0.1"]);
    let resp = client
        .get(format!("http://backend.internal:{}/", server.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn denied_loopback_host_name_is_a_clear_connect_error() {
    let server = Server::ok().await;
    let client = client_with_dns(policy(&[], &["127.0.0.0/8"], false), &["127.0.0.1"]);
    let err = client
        .get(format!(
            "http://backend.internal:{}/v1/models?key=sk-secret",
            server.port()
        ))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let eg = egress_error(&err).expect("an EgressError in the chain");
    assert_eq!(eg.host, "backend.internal");
    assert_eq!(
        eg.refused,
        vec![Refusal {
            addr: ip("127.0.0.1"),
            rule: Rule::Denied(net("127.0.0.0/8")),
        }]
    );
    let text = chain(&err);
    assert!(
        text.contains(
            "egress to backend.internal refused: 127.0.0.1 is denied by --egress-deny-cidr \
             127.0.0.0/8"
        ),
        "{text}"
    );
    assert!(!eg.to_string().contains("sk-secret"));
    assert_eq!(
        server.conns(),
        0,
        "the refused destination saw a connection"
    );
}

#[tokio::test]
async fn denied_loopback_through_the_system_resolver() {
    let server = Server::ok().await;
    let client = client(policy(&[], &["127.0.0.0/8", "::1"], false));
    let err = client
        .get(format!("http://localhost:{}/", server.port()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let eg = egress_error(&err).expect("an EgressError in the chain");
    assert_eq!(eg.host, "localhost");
    assert!(
        eg.refused
            .iter()
            .any(|r| r.addr == ip("127.0.0.1") && r.rule == Rule::Denied(net("127.0.0.0/8"))),
        "{eg}"
    );
    assert_eq!(server.conns(), 0);
}

#[tokio::test]
async fn host_name_resolving_to_metadata_is_refused() {
    let client = client_with_dns(EgressPolicy::default(), &["169.254.169.254"]);
    let started = Instant::now();
    let err = client
        .get("http://metadata.attacker.example/latest/meta-data/iam/")
        .bearer_auth("sk-never-in-errors")
        .send()
        .await
        .unwrap_err();
    // Refused at resolution: no connection attempt (which would wait for the connect timeout).
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(err.is_connect(), "{err:?}");
    let eg = egress_error(&err).expect("an EgressError in the chain");
    assert_eq!(eg.host, "metadata.attacker.example");
    assert_eq!(
        eg.refused,
        vec![Refusal {
            addr: ip("169.254.169.254"),
            rule: Rule::LinkLocal(LINK_LOCAL_V4),
        }]
    );
    let text = chain(&err);
    assert!(
        text.contains("169.254.169.254 is in the link-local/metadata range"),
        "{text}"
    );
    assert!(!text.contains("sk-never-in-errors"), "{text}");

    // The IPv6 metadata address and mapped forms too.
    for answer in ["fd00:ec2::254", "::ffff:169.254.169.254", "fe80::1"] {
        let client = client_with_dns(EgressPolicy::default(), &[answer]);
        let err = client
            .get("http://metadata.attacker.example/")
            .send()
            .await
            .unwrap_err();
        let eg = egress_error(&err).expect("an EgressError in the chain");
        assert_eq!(eg.refused[0].addr, ip(answer));
    }
}

#[tokio::test]
async fn refused_addresses_are_dropped_from_a_mixed_answer() {
    let server = Server::ok().await;
    let client = client_with_dns(EgressPolicy::default(), &["169.254.169.254", "127.0.0.1"]);
    let resp = client
        .get(format!("http://mixed.internal:{}/", server.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_changed_dns_answer_is_checked_on_the_next_connection() {
    let server = Server::ok().await;
    let answer = Arc::new(Mutex::new(vec![ip("127.0.0.1")]));
    let resolver =
        EgressResolver::with_lookup(Arc::new(EgressPolicy::default()), fake_dns(answer.clone()));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = http_client_with_resolver(Duration::from_secs(2), resolver).unwrap();
    let url = format!("http://rebind.example:{}/", server.port());
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.text().await;
    // The server closed the connection, so the next request connects (and resolves) again.
    *answer.lock().unwrap() = vec![ip("169.254.169.254")];
    let err = client.get(&url).send().await.unwrap_err();
    let eg = egress_error(&err).expect("an EgressError in the chain");
    assert_eq!(eg.host, "rebind.example");
    assert_eq!(eg.refused[0].addr, ip("169.254.169.254"));
    assert_eq!(server.conns(), 1);
}

#[tokio::test]
async fn ip_literal_connection_backstop_refuses_before_any_request_byte() {
    // IP literals skip the resolver; the connection layer still checks the peer address.
    let server = Server::ok().await;
    let client = client(policy(&[], &["127.0.0.0/8"], false));
    let err = client
        .post(format!(
            "http://127.0.0.1:{}/v1/chat/completions",
            server.port()
        ))
        .bearer_auth("sk-never-sent")
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let eg = egress_error(&err).expect("an EgressError in the chain");
    assert_eq!(eg.host, "127.0.0.1");
    assert_eq!(
        eg.refused,
        vec![Refusal {
            addr: ip("127.0.0.1"),
            rule: Rule::Denied(net("127.0.0.0/8")),
        }]
    );
    server.settle().await;
    assert_eq!(
        server.request_bytes.load(Ordering::SeqCst),
        0,
        "request bytes reached a refused destination"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let second = Server::ok().await;
    let first = Server::start(format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{}/stolen\r\ncontent-length: 0\r\n\
         connection: close\r\n\r\n",
        second.port()
    ))
    .await;
    let client = client(EgressPolicy::default());
    let resp = client
        .get(format!("http://127.0.0.1:{}/v1/models", first.port()))
        .bearer_auth("sk-provider-key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        format!("http://127.0.0.1:{}/stolen", second.port()).as_str()
    );
    assert_eq!(first.conns(), 1);
    // Give a (wrongly) followed redirect time to land.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(second.conns(), 0, "the redirect target was contacted");
}
