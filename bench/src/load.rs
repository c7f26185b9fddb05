//! The load generator: HTTP/1.1 keep-alive connections (hyper), closed-loop (N connections, each
//! sends its next request when the previous answer is complete) and open-loop (a fixed schedule;
//! latency is measured from the *intended* send time, so a stalled server is charged for every
//! request that had to wait: no coordinated omission), and streams (time to first content byte
//! and gaps between body frames). Latencies go into HDR histograms in microseconds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// One kind of request, sent over and over.
#[derive(Clone, Debug)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Bytes,
}

/// A new histogram for microsecond latencies from 1 µs to 10 minutes.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("creating a histogram")
}

/// Percentiles of one distribution, in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dist {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Dist {
    /// Summarises a histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// What a load run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadResult {
    /// Latency of successful requests (µs).
    pub latency: Dist,
    /// Successful requests.
    pub ok: u64,
    /// Transport errors and non-2xx answers.
    pub errors: u64,
    /// Successful requests per second over the run.
    pub rps: f64,
    /// The first error seen, for the log.
    pub first_error: Option<String>,
}

struct Shared {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Shared {
    fn new() -> anyhow::Result<Arc<Mutex<Self>>> {
        Ok(Arc::new(Mutex::new(Self {
            hist: histogram()?,
            ok: 0,
            errors: 0,
            first_error: None,
        })))
    }
}

fn record(shared: &Mutex<Shared>, outcome: anyhow::Result<()>, micros: u64) {
    if let Ok(mut s) = shared.lock() {
        match outcome {
            Ok(()) => {
                s.ok += 1;
                let _ = s.hist.record(micros.max(1));
            }
            Err(e) => {
                s.errors += 1;
                if s.first_error.is_none() {
                    s.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }
}

fn finish(shared: &Mutex<Shared>, elapsed: Duration) -> LoadResult {
    match shared.lock() {
        Ok(s) => LoadResult {
            latency: Dist::of(&s.hist),
            ok: s.ok,
            errors: s.errors,
            rps: s.ok as f64 / elapsed.as_secs_f64().max(1e-9),
            first_error: s.first_error.clone(),
        },
        Err(_) => LoadResult::default(),
    }
}

/// Opens one keep-alive HTTP/1.1 connection.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(target: &Target) -> anyhow::Result<http::Request<Full<Bytes>>> {
    let mut req = http::Request::post(&target.path)
        .header("host", target.addr.to_string())
        .header("content-type", "application/json");
    for (k, v) in &target.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    Ok(req.body(Full::new(target.body.clone()))?)
}

/// How the streams reach the server.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// One HTTP/1.1 connection per stream.
    Http1,
    /// HTTP/2 (prior knowledge), the streams spread over this many connections.
    Http2 {
        /// Connections.
        connections: usize,
    },
}

/// A connection of either protocol.
enum Sender {
    H1(SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> anyhow::Result<http::Response<Incoming>> {
        Ok(match self {
            Sender::H1(c) => {
                c.ready().await?;
                c.send_request(req).await?
            }
            Sender::H2(c) => {
                c.ready().await?;
                c.send_request(req).await?
            }
        })
    }
}

/// Opens one HTTP/2 connection (prior knowledge, no TLS).
async fn connect_h2(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one request on `conn` and reads the whole answer; non-2xx is an error.
async fn once(conn: &mut SendRequest<Full<Bytes>>, target: &Target) -> anyhow::Result<()> {
    conn.ready().await?;
    let resp = conn.send_request(request(target)?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok(())
}

/// Sends one request and returns the status, the headers and the body (for probes).
pub async fn fetch(target: &Target) -> anyhow::Result<(http::StatusCode, http::HeaderMap, Bytes)> {
    let mut conn = connect(target.addr).await?;
    conn.ready().await?;
    let resp = conn.send_request(request(target)?).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// Closed loop: `connections` connections, each sending back to back for `duration`.
pub async fn closed_loop(
    target: &Target,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let shared = Shared::new()?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let target = target.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = async {
                    if conn.is_none() {
                        conn = Some(connect(target.addr).await?);
                    }
                    match conn.as_mut() {
                        Some(c) => once(c, &target).await,
                        None => bail!("no connection"),
                    }
                }
                .await;
                if outcome.is_err() {
                    conn = None;
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                record(&shared, outcome, sent.elapsed().as_micros() as u64);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(finish(&shared, start.elapsed()))
}

/// Unmeasured lead-in of every open-loop run.
pub const WARMUP: Duration = Duration::from_secs(1);

/// Open loop: `rate` requests per second for `duration` on a pool of up to `connections`
/// keep-alive connections. Each latency runs from the request's scheduled send time, so time
/// spent waiting for a free connection behind a slow answer counts. The schedule starts with
/// [`WARMUP`] at the same rate whose requests are sent but not counted: the connections (the
/// caller's and the gateway's to the upstream) are then open, as they are in steady traffic.
pub async fn open_loop(
    target: &Target,
    rate: f64,
    duration: Duration,
    connections: usize,
) -> anyhow::Result<LoadResult> {
    let shared = Shared::new()?;
    let pool: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>> = Arc::new(Mutex::new(Vec::new()));
    let permits = Arc::new(Semaphore::new(connections));
    let total = (rate * (WARMUP + duration).as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(10);
    let measured_from = start + WARMUP;
    // The schedule is kept by an OS thread (nanosleep wakes within tens of microseconds; tokio's
    // timer has a 1 ms granularity that would be charged to every request).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let intended = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            if tx.send(intended).is_err() {
                break;
            }
        }
    });
    let mut tasks = Vec::with_capacity(total as usize);
    while let Some(intended) = rx.recv().await {
        let target = target.clone();
        let shared = shared.clone();
        let pool = pool.clone();
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = async {
                let _permit = permits.acquire().await?;
                let pooled = pool.lock().ok().and_then(|mut p| p.pop());
                let mut conn = match pooled {
                    Some(c) if !c.is_closed() => c,
                    _ => connect(target.addr).await?,
                };
                once(&mut conn, &target).await?;
                if let Ok(mut p) = pool.lock() {
                    p.push(conn);
                }
                anyhow::Ok(())
            }
            .await;
            if intended >= measured_from {
                record(&shared, outcome, intended.elapsed().as_micros() as u64);
            }
        }));
    }
    let _ = pacer.join();
    // Requests still unanswered 5 s after the schedule ended count as errors.
    let drain = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut late = 0;
    for mut t in tasks {
        if tokio::time::timeout_at(drain, &mut t).await.is_err() {
            t.abort();
            late += 1;
        }
    }
    let elapsed = measured_from.elapsed();
    if late > 0
        && let Ok(mut s) = shared.lock()
    {
        s.errors += late;
        if s.first_error.is_none() {
            s.first_error = Some(format!("{late} requests unanswered 5 s after the schedule"));
        }
    }
    Ok(finish(&shared, elapsed))
}

/// What a streaming run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamResult {
    /// Time from sending the request to the first body bytes (µs).
    pub ttft: Dist,
    /// Gaps between successive body frames (µs).
    pub gap: Dist,
    /// Streams completed.
    pub streams: u64,
    /// Streams that failed.
    pub errors: u64,
    /// Gaps over one second.
    pub stalls: u64,
    /// The first error seen.
    pub first_error: Option<String>,
}

/// Streams: `concurrency` connections, each running one streaming request after another until
/// `duration` is over (a started stream is finished). `mid` runs once all connections have their
/// first stream under way (to sample memory with every stream open).
pub async fn streams<F>(
    target: &Target,
    concurrency: usize,
    transport: Transport,
    duration: Duration,
    mid: F,
) -> anyhow::Result<StreamResult>
where
    F: FnOnce() + Send + 'static,
{
    // HTTP/2: the streams share a few connections, opened up front.
    let shared_h2 = match transport {
        Transport::Http1 => Vec::new(),
        Transport::Http2 { connections } => {
            let mut v = Vec::with_capacity(connections);
            for _ in 0..connections.max(1) {
                v.push(connect_h2(target.addr).await?);
            }
            v
        }
    };
    struct S {
        ttft: Histogram<u64>,
        gap: Histogram<u64>,
        streams: u64,
        errors: u64,
        stalls: u64,
        first_error: Option<String>,
    }
    let shared = Arc::new(Mutex::new(S {
        ttft: histogram()?,
        gap: histogram()?,
        streams: 0,
        errors: 0,
        stalls: 0,
        first_error: None,
    }));
    let started = Arc::new(Semaphore::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let target = target.clone();
        let shared = shared.clone();
        let started = started.clone();
        let h2 = (!shared_h2.is_empty()).then(|| shared_h2[i % shared_h2.len()].clone());
        tasks.push(tokio::spawn(async move {
            // Spread the first requests (200 µs apart, over at least 200 ms) so that thousands
            // of handshakes do not collide.
            let spread = (concurrency as u64 * 200).max(200_000);
            tokio::time::sleep(Duration::from_micros((i as u64 * 200) % spread)).await;
            let mut conn = None;
            let mut first = true;
            while Instant::now() < deadline {
                let mut ttft = None;
                let mut gaps = Vec::new();
                let outcome = async {
                    if conn.is_none() {
                        conn = Some(match &h2 {
                            Some(h2) => Sender::H2(h2.clone()),
                            None => Sender::H1(connect(target.addr).await?),
                        });
                    }
                    let Some(c) = conn.as_mut() else {
                        bail!("no connection")
                    };
                    let sent = Instant::now();
                    let resp: http::Response<Incoming> = c.send(request(&target)?).await?;
                    if first {
                        first = false;
                        started.add_permits(1);
                    }
                    if !resp.status().is_success() {
                        bail!("HTTP {}", resp.status());
                    }
                    let mut body = resp.into_body();
                    let mut last = None::<Instant>;
                    while let Some(frame) = body.frame().await {
                        let frame = frame?;
                        if frame.data_ref().is_none_or(|d| d.is_empty()) {
                            continue;
                        }
                        let now = Instant::now();
                        match last {
                            None => ttft = Some(now - sent),
                            Some(prev) => gaps.push(now - prev),
                        }
                        last = Some(now);
                    }
                    anyhow::Ok(())
                }
                .await;
                if let Ok(mut s) = shared.lock() {
                    match outcome {
                        Ok(()) => {
                            s.streams += 1;
                            if let Some(t) = ttft {
                                let _ = s.ttft.record((t.as_micros() as u64).max(1));
                            }
                            for g in gaps {
                                if g > Duration::from_secs(1) {
                                    s.stalls += 1;
                                }
                                let _ = s.gap.record((g.as_micros() as u64).max(1));
                            }
                        }
                        Err(e) => {
                            s.errors += 1;
                            if s.first_error.is_none() {
                                s.first_error = Some(format!("{e:#}"));
                            }
                            conn = None;
                        }
                    }
                }
            }
            if first {
                started.add_permits(1);
            }
        }));
    }
    let all = started.clone();
    tokio::spawn(async move {
        if let Ok(p) = all.acquire_many(concurrency as u32).await {
            p.forget();
            // Headers are in; give the streams a moment to be mid-body.
            tokio::time::sleep(Duration::from_millis(300)).await;
            mid();
        }
    });
    for t in tasks {
        t.await?;
    }
    let s = shared
        .lock()
        .map_err(|_| anyhow::anyhow!("stream results poisoned"))?;
    Ok(StreamResult {
        ttft: Dist::of(&s.ttft),
        gap: Dist::of(&s.gap),
        streams: s.streams,
        errors: s.errors,
        stalls: s.stalls,
        first_error: s.first_error.clone(),
    })
}
