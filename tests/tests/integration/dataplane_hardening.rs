//! Hard limits and endurance (issue 5): oversized request heads get 431, a client that never
//! finishes its head is disconnected (slow-loris), a body that does not arrive within the body
//! deadline gets 408 and its connection closed (also with 1,000 of them at once), a declared
//! `Content-Length` over the limit gets 413 before any body byte (and no `100 Continue`), a
//! slow reader of a fast 50 MB stream leaves
//! the data plane's memory bounded (measured on a separate data-plane process), and a bounded
//! soak with mixed faults gives every request a complete response or a well-formed error and
//! exactly one interception.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_dataplane::record::Outcome;
use switchyard_mock::MockUpstream;
use switchyard_tests::harness::manifests::{
    mux_rule, provider, router_policy, to_provider, workspace,
};
use switchyard_tests::harness::{
    DataplaneProcess, Gateway, GatewayOptions, rss_kib, sse_data, sse_events,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn mock() -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Providers `gpt` (OpenAI) and `claude` (Anthropic) with catch-all rules per model prefix so
/// model directives reach the mock, and a policy `ask` with retries and a fallback.
fn objects(mock: &MockUpstream) -> Vec<Value> {
    let base = mock.base_url();
    let mut ask = router_policy(
        "ask",
        10,
        json!({"model": "ask*"}),
        to_provider("gpt", Some("gpt-mock+status=503")),
        vec![to_provider("claude", Some("claude-mock"))],
    );
    ask["spec"]["retries"] = json!({"attempts": 1, "backoff": "1ms", "maxBackoff": "5ms"});
    ask["spec"]["circuitBreaker"] =
        json!({"consecutiveFailures": 10000, "minRequestsThreshold": 1000000});
    vec![
        workspace("default", true),
        provider("gpt", "openai", &format!("{base}/v1"), &["gpt-mock"]),
        provider("claude", "anthropic", &base, &["claude-mock"]),
        mux_rule(
            "gpt",
            "default",
            10,
            "model",
            Some("gpt-mock*"),
            to_provider("gpt", None),
        ),
        mux_rule(
            "claude",
            "default",
            20,
            "model",
            Some("claude-mock*"),
            to_provider("claude", None),
        ),
        ask,
    ]
}

async fn raw_exchange(addr: std::net::SocketAddr, head: &[u8], wait: Duration) -> (String, bool) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap_or(false);
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let mock = mock().await;
    let gw = Gateway::start_objects(&objects(&mock)).await.unwrap();
    let big = "a".repeat(100 << 10);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\ncontent-length: 0\r\n\r\n"
    );
    let (answer, _) = raw_exchange(gw.addr, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // A normal request on a new connection still works.
    let a = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let mock = mock().await;
    let gw = Gateway::start_objects_with(
        &objects(&mock),
        GatewayOptions {
            header_timeout_ms: Some(300),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    let (_, closed) = raw_exchange(
        gw.addr,
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(closed, "the connection was closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn a_slow_reader_of_a_fast_50mb_stream_leaves_memory_bounded() {
    let mock = mock().await;
    let dp = DataplaneProcess::start(env!("CARGO_BIN_EXE_run-dataplane"), &objects(&mock))
        .await
        .unwrap();
    let (pid, base) = (dp.pid(), dp.base_url.clone());
    let client = switchyard_tests::harness::client();
    // Warm up (allocator arenas, TLS-free client pools, the routing table).
    for _ in 0..3 {
        let r = client
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": "gpt-mock+bytes=1M", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        r.bytes().await.unwrap();
    }
    let baseline = rss_kib(pid);

    let mut resp = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "gpt-mock+bytes=50M", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Read about 1 MB over 3 s while the upstream could send 50 MB in well under a second.
    let mut read = 0usize;
    let mut peak = baseline;
    let slow_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < slow_until {
        if let Some(c) = resp.chunk().await.unwrap() {
            read += c.len();
        }
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slow_growth = peak.saturating_sub(baseline);
    // Then read the rest as fast as possible: everything arrives, in order, complete.
    let mut tail = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        read += c.len();
        tail.extend_from_slice(&c);
        if tail.len() > 1 << 16 {
            tail.drain(..tail.len() - (1 << 15));
        }
        peak = peak.max(rss_kib(pid));
    }
    let growth = peak.saturating_sub(baseline);
    println!(
        "50 MB stream: read {read} bytes; data-plane RSS baseline {baseline} KiB, growth while \
         reading slowly {slow_growth} KiB, overall {growth} KiB"
    );
    assert!(read >= 50 << 20, "the whole stream arrived ({read} bytes)");
    assert!(String::from_utf8_lossy(&tail).contains("[DONE]"));
    assert!(
        slow_growth < 16 << 10,
        "the data plane buffered {slow_growth} KiB for a slow reader"
    );
    assert!(growth < 32 << 10, "RSS grew by {growth} KiB");
    drop(dp);
}

/// One soak request: (path, body, stream, leave early).
fn soak_request(i: usize) -> (&'static str, Value, bool, bool) {
    const GPT: [&str; 9] = [
        "gpt-mock",
        "gpt-mock+status=503",
        "gpt-mock+status=500",
        "gpt-mock+reset",
        "gpt-mock+cut=2",
        "gpt-mock+error_event",
        "gpt-mock+latency=30",
        "gpt-mock+status=429+retry_after=0",
        "ask",
    ];
    const CLAUDE: [&str; 5] = [
        "claude-mock",
        "claude-mock+status=529",
        "claude-mock+cut=3",
        "claude-mock+error_event",
        "claude-mock+chunks=5+chunk_delay=5",
    ];
    let stream = !i.is_multiple_of(3);
    let leave = stream && i % 17 == 5;
    if i % 4 == 3 {
        let model = CLAUDE[(i / 4) % CLAUDE.len()];
        let body = json!({"model": model, "max_tokens": 30, "stream": stream, "messages": [{"role": "user", "content": format!("soak {i}")}]});
        ("/v1/messages", body, stream, leave)
    } else {
        let model = GPT[i % GPT.len()];
        let body = json!({"model": model, "max_tokens": 30, "stream": stream, "messages": [{"role": "user", "content": format!("soak {i}")}]});
        ("/v1/chat/completions", body, stream, leave)
    }
}

/// Checks one answer is complete or a well-formed error in its dialect.
fn check_answer(path: &str, stream: bool, status: u16, text: &str) -> Result<&'static str, String> {
    let anthropic = path == "/v1/messages";
    if status != 200 {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("{status}: {e}: {text}"))?;
        let ok = if anthropic {
            v["type"] == "error"
                && v["error"]["type"].is_string()
                && v["error"]["message"].is_string()
        } else {
            v["error"]["message"].is_string() && v["error"]["type"].is_string()
        };
        return if ok {
            Ok("error")
        } else {
            Err(format!("{status}: {text}"))
        };
    }
    if !stream {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("{e}: {text}"))?;
        let ok = if anthropic {
            v["content"].is_array()
        } else {
            v["choices"].is_array()
        };
        return if ok {
            Ok("complete")
        } else {
            Err(text.to_owned())
        };
    }
    if anthropic {
        let events = sse_events(text).map_err(|e| e.to_string())?;
        match events.last().map(|(name, _)| name.as_str()) {
            Some("message_stop") => Ok("complete"),
            Some("error") => Ok("stream_error"),
            other => Err(format!("stream ended with {other:?}: {text}")),
        }
    } else {
        // A stream ends with `[DONE]`, or with one error event and nothing after it.
        let (chunks, done) = sse_data(text).map_err(|e| e.to_string())?;
        match (
            done,
            chunks.last().is_some_and(|c| c.get("error").is_some()),
        ) {
            (true, false) => Ok("complete"),
            (false, true) => Ok("stream_error"),
            _ => Err(format!("neither [DONE] nor a last error event: {text}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_soak_with_mixed_faults_records_every_request_once() {
    let mock = mock().await;
    mock.set_recording(false);
    let gw = Gateway::start_objects(&objects(&mock)).await.unwrap();
    let requests = 1500usize;
    let concurrency = 16usize;
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = gw.http_client();
        let base = gw.base_url();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut seen: Vec<(usize, Result<&'static str, String>)> = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return seen;
                }
                let (path, body, stream, leave) = soak_request(i);
                let mut req = client
                    .post(format!("{base}{path}"))
                    .header("x-request-id", format!("soak-{i}"))
                    .json(&body);
                if path == "/v1/messages" {
                    req = req.header("anthropic-version", "2023-06-01");
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                if leave && status == 200 {
                    let mut resp = resp;
                    let _ = resp.chunk().await;
                    drop(resp);
                    seen.push((i, Ok("left")));
                    continue;
                }
                let text = resp.text().await.unwrap();
                seen.push((i, check_answer(path, stream, status, &text)));
            }
        }));
    }
    let mut kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut bad = Vec::new();
    for w in workers {
        for (i, r) in w.await.unwrap() {
            match r {
                Ok(k) => *kinds.entry(k).or_default() += 1,
                Err(e) => bad.push(format!("soak-{i}: {e}")),
            }
        }
    }
    let took = started.elapsed();
    assert!(bad.is_empty(), "malformed answers:\n{}", bad.join("\n"));
    let records = gw.wait_records(requests).await.unwrap();
    let records = {
        let _ = records;
        gw.unique_records().await.unwrap()
    };
    println!("soak: {requests} requests in {took:?}: {kinds:?}");
    assert_eq!(records.len(), requests, "one interception per request");
    let ids: std::collections::BTreeSet<String> =
        records.iter().map(|r| r.request_id.clone()).collect();
    for i in 0..requests {
        assert!(ids.contains(&format!("soak-{i}")), "no record for soak-{i}");
    }
    let cancelled = records
        .iter()
        .filter(|r| r.outcome == Outcome::Cancelled)
        .count();
    // A caller who left after the first chunk of a short stream may have left after its end.
    assert!(cancelled <= kinds.get("left").copied().unwrap_or(0));
    for k in ["complete", "error", "stream_error"] {
        assert!(
            kinds.get(k).copied().unwrap_or(0) > 0,
            "no {k} answers: {kinds:?}"
        );
    }
    assert!(
        took < Duration::from_secs(60),
        "the soak is bounded ({took:?})"
    );
}

// Request bodies (issue 5, defect 5): a whole-body deadline (`--body-timeout-ms`) and refusals
// from the head (`Content-Length` above `--max-body-bytes`, with or without
// `Expect: 100-continue`).

/// Reads until the peer closes (EOF or reset), at most `bound`; returns what arrived and whether
/// the connection ended within the bound.
async fn read_until_closed<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    bound: Duration,
) -> (String, bool) {
    let mut out = Vec::new();
    let closed = tokio::time::timeout(bound, async {
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The JSON body of a raw HTTP/1.1 answer with a `Content-Length` (the gateway's own errors).
fn raw_json(answer: &str) -> Value {
    let (_, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head: {answer}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// Checks a raw answer is `status` with a gateway error in the dialect of `path`, and that it
/// tells the client the connection closes.
fn assert_refusal(answer: &str, status: u16, path: &str, openai_type: &str, anthropic_type: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "{path}: {answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{path}: {answer}"
    );
    let v = raw_json(answer);
    if path == "/v1/messages" {
        assert_eq!(v["type"], "error", "{answer}");
        assert_eq!(v["error"]["type"], anthropic_type, "{answer}");
        assert!(v["error"]["message"].is_string(), "{answer}");
    } else {
        assert_eq!(v["error"]["type"], openai_type, "{answer}");
        assert!(v["error"]["message"].is_string(), "{answer}");
    }
}

/// A request head for `path` (Anthropic's version header on `/v1/messages`) with `extra` headers.
fn body_head(path: &str, content_length: usize, extra: &str) -> String {
    let version = if path == "/v1/messages" {
        "anthropic-version: 2023-06-01\r\n"
    } else {
        ""
    };
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{version}\
         content-length: {content_length}\r\n{extra}\r\n"
    )
}

const PATHS: [&str; 2] = ["/v1/chat/completions", "/v1/messages"];

/// Every route that reads a request body (they share one body reader).
const BODY_ROUTES: [&str; 6] = [
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/chains/some-chain/chat/completions",
    "/v1/chains/default/some-chain/chat/completions",
];

#[tokio::test]
async fn a_trickled_body_gets_408_and_the_connection_is_closed_at_the_deadline() {
    let mock = mock().await;
    let deadline = Duration::from_millis(1000);
    let gw = Gateway::start_objects_with(
        &objects(&mock),
        GatewayOptions {
            body_timeout_ms: Some(deadline.as_millis() as u64),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut clients = Vec::new();
    for path in BODY_ROUTES {
        let addr = gw.addr;
        clients.push(tokio::spawn(async move {
            let started = Instant::now();
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut rd, mut wr) = s.into_split();
            wr.write_all(body_head(path, 100_000, "").as_bytes())
                .await
                .unwrap();
            // One byte every 100 ms: never idle for long, never done (an idle timeout would
            // not end this; the whole-body deadline must).
            let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let trickle = tokio::spawn({
                let sent = sent.clone();
                async move {
                    while wr.write_all(b" ").await.is_ok() {
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            });
            let (answer, closed) = read_until_closed(&mut rd, Duration::from_secs(15)).await;
            let took = started.elapsed();
            trickle.abort();
            println!(
                "{path}: closed after {took:?}, {} body bytes trickled",
                sent.load(std::sync::atomic::Ordering::Relaxed)
            );
            (path, answer, closed, took)
        }));
    }
    for c in clients {
        let (path, answer, closed, took) = c.await.unwrap();
        assert!(closed, "{path}: the connection is still open after 15 s");
        assert!(took >= deadline, "{path}: closed after {took:?}");
        assert_refusal(
            &answer,
            408,
            path,
            "invalid_request_error",
            "invalid_request_error",
        );
    }
    // The refusals were recorded like any refused request.
    let records = gw.wait_records(BODY_ROUTES.len()).await.unwrap();
    assert!(records.iter().all(|r| r.status == 408), "{records:?}");
    // A normal request still works.
    let a = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
}

/// The soft open-file limit of this process (Linux).
fn open_file_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .map(|v| {
            if v == "unlimited" {
                u64::MAX
            } else {
                v.parse().unwrap()
            }
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_bodies_are_all_closed_by_the_deadline_and_others_are_served() {
    const SLOW: usize = 1000;
    // Each slow connection costs two descriptors here (client and gateway ends).
    let limit = open_file_limit();
    assert!(
        limit >= (2 * SLOW + 512) as u64,
        "this test needs `ulimit -n` of at least {} (it is {limit})",
        2 * SLOW + 512
    );
    let mock = mock().await;
    let deadline = Duration::from_millis(5000);
    let gw = Gateway::start_objects_with(
        &objects(&mock),
        GatewayOptions {
            body_timeout_ms: Some(deadline.as_millis() as u64),
            // Phase 1 below holds incomplete heads for as long as opening takes.
            header_timeout_ms: Some(600_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let in_flight = || gw.running().state.metrics.in_flight.get();
    let baseline = in_flight();
    let started = Instant::now();
    // Phase 1: open every connection with its head all but the blank line that ends it, so no
    // body deadline starts however long opening a thousand connections takes (a loaded machine
    // took more than the deadline once, and the first bodies expired before the last opened).
    let mut conns = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let path = PATHS[i % 2];
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let head = body_head(path, 1000, "");
        let unended = head.strip_suffix("\r\n").unwrap();
        s.write_all(unended.as_bytes()).await.unwrap();
        conns.push((path, s));
    }
    assert_eq!(
        in_flight(),
        baseline,
        "a head without its end started a request"
    );
    // Phase 2: end every head and start its body, then nothing (writes only, no connects).
    let mut slow = Vec::with_capacity(SLOW);
    for (path, mut s) in conns {
        let opened = Instant::now();
        s.write_all(b"\r\n{\"model\": ").await.unwrap();
        slow.push(tokio::spawn(async move {
            let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(90)).await;
            (path, answer, closed, opened.elapsed())
        }));
    }
    // Every one of them is being read by the gateway (observed, not assumed).
    let wait_until = Instant::now() + Duration::from_secs(60);
    while in_flight() < baseline + SLOW as i64 {
        assert!(
            Instant::now() < wait_until,
            "only {} slow requests in flight",
            in_flight() - baseline
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let held_after = started.elapsed();
    // While they are held, a normal request is served.
    let a = tokio::time::timeout(
        Duration::from_secs(30),
        gw.post(
            "/v1/chat/completions",
            &json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    )
    .await
    .expect("a normal request was not answered while slow bodies were held")
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
    let served_after = started.elapsed();
    // Then the deadline closes every slow connection with a 408.
    let mut bad = Vec::new();
    let mut longest = Duration::ZERO;
    for t in slow {
        let (path, answer, closed, held) = t.await.unwrap();
        longest = longest.max(held);
        if !closed {
            bad.push(format!("{path}: still open after {held:?}"));
        } else if held < deadline {
            bad.push(format!(
                "{path}: closed after {held:?}, before the deadline"
            ));
        } else if !answer.starts_with("HTTP/1.1 408 ") {
            bad.push(format!("{path}: {answer}"));
        }
    }
    println!(
        "{SLOW} slow bodies held after {held_after:?}, normal request served after \
         {served_after:?}, all closed after {:?} (longest held {longest:?})",
        started.elapsed()
    );
    assert!(bad.is_empty(), "{} bad:\n{}", bad.len(), bad.join("\n"));
    // And their tasks are gone (every request finished).
    let wait_until = Instant::now() + Duration::from_secs(30);
    while in_flight() > baseline {
        assert!(
            Instant::now() < wait_until,
            "{} requests still in flight",
            in_flight() - baseline
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_content_length_over_the_limit_gets_413_before_any_body_byte() {
    let mock = mock().await;
    let gw = Gateway::start_objects_with(
        &objects(&mock),
        GatewayOptions {
            max_body_bytes: Some(1024),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for path in BODY_ROUTES {
        // The head only: the answer must not wait for the body.
        let (answer, closed) = raw_exchange(
            gw.addr,
            body_head(path, 1025, "").as_bytes(),
            Duration::from_secs(10),
        )
        .await;
        assert!(
            closed,
            "{path}: no answer and no close without a body: {answer}"
        );
        assert_refusal(
            &answer,
            413,
            path,
            "invalid_request_error",
            "request_too_large",
        );
    }
    // At the limit a request works.
    let body = json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]});
    let mut text = body.to_string();
    text.push_str(&" ".repeat(1024 - text.len()));
    let a = gw
        .post_raw("/v1/chat/completions", text.into_bytes(), &[])
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn expect_100_continue_over_the_limit_is_refused_without_100_continue() {
    let mock = mock().await;
    let gw = Gateway::start_objects_with(
        &objects(&mock),
        GatewayOptions {
            max_body_bytes: Some(1024),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for path in BODY_ROUTES {
        let (answer, closed) = raw_exchange(
            gw.addr,
            body_head(path, 1 << 30, "expect: 100-continue\r\n").as_bytes(),
            Duration::from_secs(10),
        )
        .await;
        assert!(
            !answer.contains("100 Continue"),
            "{path}: the gateway asked for an over-limit body: {answer}"
        );
        assert!(closed, "{path}: not closed: {answer}");
        assert_refusal(
            &answer,
            413,
            path,
            "invalid_request_error",
            "request_too_large",
        );
    }
}

#[tokio::test]
async fn expect_100_continue_within_the_limit_gets_100_continue_and_an_answer() {
    let mock = mock().await;
    let gw = Gateway::start_objects_with(
        &objects(&mock),
        GatewayOptions {
            max_body_bytes: Some(1024),
            body_timeout_ms: Some(10_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let bodies = [
        json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "claude-mock", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
    ];
    for (path, body) in PATHS.into_iter().zip(bodies) {
        let body = body.to_string();
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(
            body_head(
                path,
                body.len(),
                "expect: 100-continue\r\nconnection: close\r\n",
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        // The interim answer comes first, before any body byte is sent.
        let mut interim = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            let mut b = [0u8; 1];
            while !interim.ends_with(b"\r\n\r\n") {
                assert_eq!(
                    s.read(&mut b).await.unwrap(),
                    1,
                    "closed before 100 Continue"
                );
                interim.push(b[0]);
            }
        })
        .await
        .expect("no 100 Continue within 10 s");
        assert_eq!(
            String::from_utf8_lossy(&interim),
            "HTTP/1.1 100 Continue\r\n\r\n"
        );
        s.write_all(body.as_bytes()).await.unwrap();
        let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
        assert!(closed, "{path}: {answer}");
        assert!(answer.starts_with("HTTP/1.1 200 "), "{path}: {answer}");
        let expected = if path == "/v1/messages" {
            "\"content\""
        } else {
            "\"choices\""
        };
        assert!(answer.contains(expected), "{path}: {answer}");
    }
}

#[tokio::test]
async fn a_large_body_at_loopback_speed_is_not_cut_by_the_default_deadline() {
    let mock = mock().await;
    let gw = Gateway::start_objects(&objects(&mock)).await.unwrap();
    let content = "lorem ipsum ".repeat((24 << 20) / 12);
    let started = Instant::now();
    let a = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-mock", "messages": [{"role": "user", "content": content}]}),
        )
        .await
        .unwrap();
    println!("24 MiB request answered in {:?}", started.elapsed());
    assert_eq!(a.status, 200, "{}", a.text);
}

/// `body` as chunks of at most `size` bytes, with the last chunk.
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn a_chunked_body_keeps_the_streaming_limit() {
    let mock = mock().await;
    let gw = Gateway::start_objects_with(
        &objects(&mock),
        GatewayOptions {
            max_body_bytes: Some(1024),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    // Within the limit: no length declared, the body is read and served.
    let body = json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]});
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(&chunked(body.to_string().as_bytes(), 16));
    let (answer, closed) = raw_exchange(gw.addr, &request, Duration::from_secs(10)).await;
    assert!(closed, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // Past the limit: 413 once more than the limit has arrived.
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(&chunked(&[b' '; 1500], 500));
    let (answer, closed) = raw_exchange(gw.addr, &request, Duration::from_secs(10)).await;
    assert!(closed, "{answer}");
    assert_refusal(
        &answer,
        413,
        "/v1/chat/completions",
        "invalid_request_error",
        "request_too_large",
    );
}
