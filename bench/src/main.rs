//! `switchyard-bench`: data-plane overhead, throughput, streaming, memory, config propagation
//! and peer gateways, on one machine over loopback. `bench/run.sh` builds the release binaries,
//! installs the peers and runs this; see docs/performance.md.
//!
//! Every data-plane figure is measured against a direct call to the same mock upstream in the
//! same run: *added* latency = gateway latency − direct latency at the same percentile.

// The table on stdout and progress on stderr are this binary's interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod load;
mod manifests;
mod peers;
mod procs;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use serde_json::json;

use crate::load::{Dist, LoadResult, Target};
use crate::procs::Proc;
use crate::report::{Cell, Report, Row};

/// Benchmarks the data plane and control plane against a direct call to the mock upstream and
/// against peer gateways.
#[derive(Debug, Parser)]
#[command(name = "switchyard-bench")]
pub struct Args {
    /// Folder with the release binaries (mock upstream, data plane, operator).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where results go (`<date>-<sha>.json` and `latest.json`); empty: not written.
    #[arg(long, default_value = "bench/results")]
    out_dir: String,
    /// Scratch folder (manifests, logs, record files).
    #[arg(long, default_value = "target/bench-work")]
    work_dir: PathBuf,
    /// CPU list of the gateway under test (data plane, operator, peers).
    #[arg(long, default_value = "1")]
    gateway_cpu: String,
    /// CPU list of the mock upstream (the load generator runs where it is started).
    #[arg(long, default_value = "0")]
    client_cpu: String,
    /// Seconds per load phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Open-loop rates (requests/s).
    #[arg(long, value_delimiter = ',', default_value = "500,2000,5000,10000")]
    rates: Vec<f64>,
    /// Connections of the closed-loop maximum-throughput phase.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Concurrent streams.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Concurrent streams of the many-streams section.
    #[arg(long, default_value_t = 10_000)]
    many_streams: usize,
    /// Deltas of each of those streams (500 ms apart).
    #[arg(long, default_value_t = 20)]
    many_stream_chunks: usize,
    /// Seconds of the soak: open loop at `--soak-rate`, resident memory sampled every window.
    #[arg(long, default_value_t = 600.0)]
    soak_seconds: f64,
    /// Requests/s of the soak.
    #[arg(long, default_value_t = 2000.0)]
    soak_rate: f64,
    /// Seconds per soak window (one latency distribution and one memory sample each).
    #[arg(long, default_value_t = 10.0)]
    soak_window: f64,
    /// Seconds of the streaming phase.
    #[arg(long, default_value_t = 6.0)]
    stream_seconds: f64,
    /// CR counts to compile.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    cr_counts: Vec<usize>,
    /// Manifest edits timed until served.
    #[arg(long, default_value_t = 100)]
    edits: usize,
    /// CRs in the folder while editing.
    #[arg(long, default_value_t = 2000)]
    edit_crs: usize,
    /// CRs the operator loads for its memory figure (0: skip).
    #[arg(long, default_value_t = 10000)]
    operator_crs: usize,
    /// Folder where `bench/peers.sh` installed the peers.
    #[arg(long, default_value = "target/bench-peers")]
    peers_dir: PathBuf,
    /// Peers to run (litellm, vllm-router, sglang-router, portkey); empty list: none.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "litellm,vllm-router,sglang-router,portkey"
    )]
    peers: Vec<String>,
    /// Seconds a peer may take to start.
    #[arg(long, default_value_t = 90)]
    peer_start_timeout: u64,
    /// Sections to run (the others are left out of the table): serial, open, throughput,
    /// streams, many-streams, soak, compile, edits, operator.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "serial,open,throughput,streams,many-streams,soak,compile,edits,operator"
    )]
    sections: Vec<String>,
    /// Git commit, for the results file name.
    #[arg(long, default_value = "unknown")]
    git_sha: String,
    /// Free text describing the machine, for the results.
    #[arg(long, default_value = "")]
    machine: String,
}

const ALL_SECTIONS: [&str; 9] = [
    "serial",
    "throughput",
    "open",
    "streams",
    "many-streams",
    "soak",
    "compile",
    "edits",
    "operator",
];

impl Args {
    fn check_sections(&self) -> anyhow::Result<()> {
        for s in &self.sections {
            anyhow::ensure!(
                ALL_SECTIONS.contains(&s.as_str()),
                "unknown section {s:?} (known: {})",
                ALL_SECTIONS.join(", ")
            );
        }
        Ok(())
    }

    fn runs(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }
}

const CHAT: &str = "/v1/chat/completions";

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.05))
}

fn chat_body(model: &str, content: &str, stream: bool) -> Bytes {
    Bytes::from(
        json!({"model": model, "stream": stream,
            "messages": [{"role": "user", "content": content}]})
        .to_string(),
    )
}

const PROMPT: &str = "Hello there, please summarise the design of a small web service in Rust.";

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn progress(msg: &str) {
    eprintln!("[bench {:>6.1}s] {msg}", START.elapsed().as_secs_f64());
}

static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Samples a process's RSS every 100 ms while `fut` runs; returns its output and the peak.
async fn with_peak_rss<T>(pid: u32, fut: impl Future<Output = T>) -> (T, u64) {
    let peak = Arc::new(Mutex::new(0u64));
    let p = peak.clone();
    let sampler = tokio::spawn(async move {
        loop {
            if let Ok(rss) = procs::rss_of(pid)
                && let Ok(mut m) = p.lock()
            {
                *m = (*m).max(rss);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let out = fut.await;
    sampler.abort();
    let peak = peak.lock().map(|m| *m).unwrap_or(0);
    (out, peak)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.check_sections()?;
    let _ = *START;
    let load_before = load_average();
    std::fs::create_dir_all(&args.work_dir)?;
    let mut report = Report::new(&args, &load_before);

    let (mock, mock_addr) = Proc::mock(
        &args.bin_dir.join("switchyard-mock-upstream"),
        &args.client_cpu,
    )
    .await
    .context("starting the mock upstream")?;
    progress(&format!("mock upstream on {mock_addr}"));

    data_plane(&args, mock_addr, &mut report).await?;
    control_plane(&args, mock_addr, &mut report).await?;
    for name in args.peers.iter().filter(|n| !n.is_empty()) {
        let phases = args.rates.len() as f64 + 3.0;
        let budget = Duration::from_secs(args.peer_start_timeout)
            + secs((args.seconds + 5.0) * phases + 30.0);
        match tokio::time::timeout(budget, peers::run(&args, name, mock_addr, &mut report)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                progress(&format!("peer {name}: skipped: {e:#}"));
                report.skip_peer(name, &format!("{e:#}"));
            }
            Err(_) => {
                progress(&format!("peer {name}: skipped: took over {budget:?}"));
                report.skip_peer(name, &format!("did not finish within {budget:?}"));
            }
        }
    }
    mock.stop().await;
    report.finish(&load_average());
    print!("{}", report.table());
    // A run of some sections only is not a result to compare commits with.
    if ALL_SECTIONS.iter().all(|s| args.runs(s)) {
        report.write(&args.out_dir, &args.git_sha)?;
    } else {
        progress("some sections only: results not written");
    }
    Ok(())
}

/// Starts the floor relay (a bare relay in the data plane's place) on the gateway CPU.
async fn start_floor(args: &Args, mock: SocketAddr) -> anyhow::Result<(Proc, SocketAddr)> {
    Proc::floor(
        &args.bin_dir.join("switchyard-floor"),
        &args.gateway_cpu,
        mock,
    )
    .await
    .context("starting the floor relay")
}

/// A slot for a process's RSS and the callback that fills it (given to [`load::streams`] as
/// its `mid`, to sample memory with every stream open).
fn rss_sampler(pid: u32) -> (Arc<Mutex<u64>>, impl FnOnce() + Send + 'static) {
    let slot = Arc::new(Mutex::new(0u64));
    let r = slot.clone();
    let sample = move || {
        if let (Ok(v), Ok(mut m)) = (procs::rss_of(pid), r.lock()) {
            *m = v;
        }
    };
    (slot, sample)
}

/// Starts a data plane in local mode over `dir`, pinned to the gateway CPU; waits for `/readyz`.
/// Returns it, its API address and its health and metrics address.
async fn start_data_plane(
    args: &Args,
    name: &str,
    dir: &Path,
    extra: &[&str],
) -> anyhow::Result<(Proc, SocketAddr, SocketAddr)> {
    let (addr, admin) = (procs::free_addr()?, procs::free_addr()?);
    let work = args.work_dir.join(name);
    std::fs::create_dir_all(&work)?;
    let mut argv: Vec<String> = vec![
        "--listen".into(),
        addr.to_string(),
        "--admin-listen".into(),
        admin.to_string(),
        "--manifests".into(),
        dir.display().to_string(),
        "--spool-dir".into(),
        work.join("spool").display().to_string(),
        "--records-file".into(),
        work.join("records.jsonl").display().to_string(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    let mut p = Proc::spawn(
        name,
        &args.gateway_cpu,
        &args.bin_dir.join("switchyard-dataplane"),
        &argv,
        &[("RUST_LOG".into(), "warn".into())],
        &args.work_dir.join(format!("{name}.log")),
    )?;
    procs::wait_http(&mut p, admin, "/healthz", Duration::from_secs(30)).await?;
    // Ready means a snapshot is loaded.
    let start = Instant::now();
    while procs::get_status(admin, "/readyz").await.unwrap_or(0) != 200 {
        if start.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("{name}: /readyz not 200 within 30 s (see {}.log)", name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((p, addr, admin))
}

fn added(gw: &Dist, direct: &Dist) -> [i64; 3] {
    [
        gw.p50 as i64 - direct.p50 as i64,
        gw.p99 as i64 - direct.p99 as i64,
        gw.p999 as i64 - direct.p999 as i64,
    ]
}

fn check(r: &LoadResult, what: &str) {
    if r.errors > 0 {
        progress(&format!(
            "{what}: {} errors, first: {}",
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        ));
    }
}

/// Section 1: the data plane against direct calls.
async fn data_plane(args: &Args, mock: SocketAddr, report: &mut Report) -> anyhow::Result<()> {
    let dir = args.work_dir.join("features");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    manifests::write_atomic(&dir.join("features.yaml"), &manifests::features(mock))?;
    let (dp, gw, _) = start_data_plane(args, "dataplane", &dir, &["--require-client-key"]).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = dp.rss()?;
    report.raw("dataplane_rss_idle_bytes", json!(idle));
    progress(&format!(
        "data plane on {gw}, idle RSS {} MB",
        idle / 1_000_000
    ));

    let auth = |key: &str| vec![("authorization".to_owned(), format!("Bearer {key}"))];
    let direct = Target {
        addr: mock,
        path: CHAT.into(),
        headers: vec![],
        body: chat_body("bench-base", PROMPT, false),
    };
    let base = Target {
        addr: gw,
        headers: auth(manifests::BASE_KEY),
        ..direct.clone()
    };
    // Probe each route once: a wrong route must fail loudly, not be measured.
    let big: String = "lorem ipsum dolor sit amet ".repeat(8192 / 27 + 1);
    let big = &big[..8192];
    let claude_direct = Target {
        addr: mock,
        path: "/v1/messages".into(),
        headers: vec![("anthropic-version".into(), "2023-06-01".into())],
        body: Bytes::from(
            json!({"model": "bench-claude", "max_tokens": 100,
                "messages": [{"role": "user", "content": big}]})
            .to_string(),
        ),
    };
    let rows: Vec<(&str, &str, Target, Target, Option<u64>)> = vec![
        (
            "serial_base",
            "routing + auth + metrics",
            direct.clone(),
            base.clone(),
            Some(120),
        ),
        (
            "serial_group",
            "+ AffinityGroup of 10 backends",
            Target {
                body: chat_body("bench-group", PROMPT, false),
                ..direct.clone()
            },
            Target {
                body: chat_body("bench-group", PROMPT, false),
                ..base.clone()
            },
            None,
        ),
        (
            "serial_policy",
            "+ RouterPolicy with fallback",
            Target {
                body: chat_body("bench-policy", PROMPT, false),
                ..direct.clone()
            },
            Target {
                body: chat_body("bench-policy", PROMPT, false),
                ..base.clone()
            },
            None,
        ),
        (
            "serial_guarded",
            "+ guardrails, limits, recording",
            direct.clone(),
            Target {
                headers: auth(manifests::GUARDED_KEY),
                ..base.clone()
            },
            Some(250),
        ),
        (
            "serial_translate",
            "OpenAI→Anthropic, 8 KB body",
            claude_direct,
            Target {
                body: chat_body("bench-claude", big, false),
                ..base.clone()
            },
            Some(300),
        ),
    ];
    for (id, _, d, g, _) in &rows {
        for t in [d, g] {
            let (status, headers, body) = load::fetch(t).await?;
            anyhow::ensure!(
                status.is_success(),
                "{id}: probe got HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
            if let Some(route) = headers.get("x-switchyard-route") {
                progress(&format!("{id}: route {}", route.to_str().unwrap_or("?")));
            }
        }
    }

    // One request at a time. First the floor: a bare relay in the data plane's place.
    let mut floor = None;
    if args.runs("serial") {
        let (relay, relay_addr) = start_floor(args, mock).await?;
        let through_relay = Target {
            addr: relay_addr,
            ..direct.clone()
        };
        let rd = load::closed_loop(&direct, 1, secs(args.seconds)).await?;
        let rf = load::closed_loop(&through_relay, 1, secs(args.seconds)).await?;
        relay.stop().await;
        check(&rf, "floor");
        let a = added(&rf.latency, &rd.latency);
        progress(&format!("floor: added p50/p99/p99.9 {a:?} µs"));
        report.row(
            Row::new(
                "serial_floor",
                "floor: a bare HTTP relay (bench/src/bin/floor.rs) in Switchyard's place, 1 at a time (µs p50/p99/p99.9)",
            )
            .direct(Cell::dist(&rd.latency))
            .gateway(Cell::dist(&rf.latency))
            .added(Cell::triple(a))
            .errors(rf.errors),
        );
        report.raw("serial_floor", json!({"direct": rd, "floor": rf}));
        floor = Some(rf.latency);
    }
    for (id, label, d, g, target) in rows.iter().filter(|_| args.runs("serial")) {
        let rd = load::closed_loop(d, 1, secs(args.seconds)).await?;
        let rg = load::closed_loop(g, 1, secs(args.seconds)).await?;
        check(&rg, id);
        let a = added(&rg.latency, &rd.latency);
        progress(&format!("{id}: added p50/p99/p99.9 {a:?} µs"));
        let mut row = Row::new(
            id,
            &format!("added latency, 1 at a time, {label} (µs p50/p99/p99.9)"),
        )
        .direct(Cell::dist(&rd.latency))
        .gateway(Cell::dist(&rg.latency))
        .added(Cell::triple(a));
        if *id == "serial_base" {
            row = row.target("p50<50, p99<120", a[0] < 50 && a[1] < 120);
        } else if let Some(t) = target {
            row = row.target(&format!("p99<{t}"), a[1] < *t as i64);
        }
        report.row(row.errors(rg.errors));
        report.baselines.insert(id.to_string(), rd.clone());
        report.raw(id, json!({"direct": rd, "gateway": rg}));
        if *id == "serial_base"
            && let Some(f) = &floor
        {
            let own = added(&rg.latency, f);
            report.row(
                Row::new(
                    "serial_base_over_floor",
                    "Switchyard's own cost: routing + auth + metrics minus the floor (µs p50/p99/p99.9)",
                )
                .added(Cell::triple(own)),
            );
        }
    }

    // Open loop at fixed rates.
    let mut rss_5000 = None;
    for &rate in args.rates.iter().filter(|_| args.runs("open")) {
        let rd = load::open_loop(&direct, rate, secs(args.seconds), 256).await?;
        let (rg, peak) = with_peak_rss(
            dp.pid()?,
            load::open_loop(&base, rate, secs(args.seconds), 256),
        )
        .await;
        let rg = rg?;
        check(&rg, "open loop");
        if (rate - 5000.0).abs() < 1.0 {
            rss_5000 = Some(peak);
        }
        let a = added(&rg.latency, &rd.latency);
        progress(&format!(
            "open loop {rate}/s: added {a:?} µs, errors {}",
            rg.errors
        ));
        let id = format!("open_{rate}");
        report.baselines.insert(id.clone(), rd.clone());
        let mut row = Row::new(
            &id,
            &format!("added latency at {rate} req/s open loop (µs p50/p99/p99.9)"),
        )
        .direct(Cell::dist(&rd.latency))
        .gateway(Cell::dist(&rg.latency))
        .added(Cell::triple(a))
        .errors(rg.errors);
        if (rate - 10_000.0).abs() < 1.0 {
            // The throughput target: 10,000 requests/s sustained on one core, p99 < 5 ms.
            row = row.target(
                "gateway p99<5 ms, 0 errors",
                rg.latency.p99 < 5_000 && rg.errors == 0,
            );
        }
        report.row(row);
        report.raw(
            &id,
            json!({"direct": rd, "gateway": rg, "gateway_peak_rss_bytes": peak}),
        );
    }

    // Closed loop, maximum throughput.
    let mut peak_max = None;
    if args.runs("throughput") {
        let td = load::closed_loop(&direct, args.connections, secs(args.seconds)).await?;
        let (tg, peak) = with_peak_rss(
            dp.pid()?,
            load::closed_loop(&base, args.connections, secs(args.seconds)),
        )
        .await;
        let tg = tg?;
        check(&tg, "max throughput");
        progress(&format!(
            "max throughput: direct {:.0}/s, gateway {:.0}/s p99 {} µs",
            td.rps, tg.rps, tg.latency.p99
        ));
        report.row(
            Row::new(
                "max_throughput",
                &format!(
                    "throughput, closed loop, {} connections (req/s; p99 µs)",
                    args.connections
                ),
            )
            .direct(Cell::text(format!("{:.0}; p99 {}", td.rps, td.latency.p99)))
            .gateway(Cell::text(format!("{:.0}; p99 {}", tg.rps, tg.latency.p99)))
            .target(">=10000/s, 0 errors", tg.rps >= 10_000.0 && tg.errors == 0)
            .errors(tg.errors)
            .value(tg.rps),
        );
        report.raw("max_throughput", json!({"direct": td, "gateway": tg}));
        report.baselines.insert("max_throughput".into(), td.clone());
        let tguard = load::closed_loop(
            &Target {
                headers: auth(manifests::GUARDED_KEY),
                ..base.clone()
            },
            args.connections,
            secs(args.seconds),
        )
        .await?;
        report.row(
            Row::new(
                "max_throughput_guarded",
                "throughput with guardrails, limits, recording (req/s; p99 µs)",
            )
            .gateway(Cell::text(format!(
                "{:.0}; p99 {}",
                tguard.rps, tguard.latency.p99
            )))
            .errors(tguard.errors),
        );
        report.raw("max_throughput_guarded", json!(tguard));

        peak_max = Some(peak);
    }

    // The soak, before the streams (whose memory takes a while to go back to the system).
    if args.runs("soak") && args.soak_seconds > 0.0 {
        soak(args, &base, &dp, report).await?;
    }

    // Streams.
    let mut rss_open_streams = None;
    if args.runs("streams") {
        let stream_model = "bench-base+chunks=20+chunk_delay=50";
        let sd_target = Target {
            body: chat_body(stream_model, PROMPT, true),
            ..direct.clone()
        };
        let sg_target = Target {
            body: chat_body(stream_model, PROMPT, true),
            ..base.clone()
        };
        let sd = load::streams(
            &sd_target,
            args.streams,
            load::Transport::Http1,
            secs(args.stream_seconds),
            || {},
        )
        .await?;
        // The floor: the same streams through a bare relay in the data plane's place.
        let (relay, relay_addr) = start_floor(args, mock).await?;
        let sf = load::streams(
            &Target {
                addr: relay_addr,
                ..sd_target.clone()
            },
            args.streams,
            load::Transport::Http1,
            secs(args.stream_seconds),
            || {},
        )
        .await?;
        relay.stop().await;
        let floor_ttft = added(&sf.ttft, &sd.ttft);
        report.row(
            Row::new(
                "stream_ttft_floor",
                &format!(
                    "floor: time to first token through a bare relay, {} streams (µs p50/p99/p99.9)",
                    args.streams
                ),
            )
            .direct(Cell::dist(&sd.ttft))
            .gateway(Cell::dist(&sf.ttft))
            .added(Cell::triple(floor_ttft))
            .errors(sf.errors),
        );
        report.raw("streams_floor", json!({"direct": sd, "floor": sf}));
        let (rss_streams, sample) = rss_sampler(dp.pid()?);
        let sg = load::streams(
            &sg_target,
            args.streams,
            load::Transport::Http1,
            secs(args.stream_seconds),
            sample,
        )
        .await?;
        let rss_streams = rss_streams.lock().map(|m| *m).unwrap_or(0);
        let ttft = added(&sg.ttft, &sd.ttft);
        let gap = added(&sg.gap, &sd.gap);
        progress(&format!(
            "streams: added ttft {ttft:?} gap {gap:?}, stalls {}, errors {}",
            sg.stalls, sg.errors
        ));
        report.row(
            Row::new(
                "stream_ttft",
                &format!(
                    "added time to first token, {} streams (µs p50/p99/p99.9)",
                    args.streams
                ),
            )
            .direct(Cell::dist(&sd.ttft))
            .gateway(Cell::dist(&sg.ttft))
            .added(Cell::triple(ttft))
            .target("p99<250", ttft[1] < 250)
            .errors(sg.errors),
        );
        report.row(
            Row::new(
                "stream_gap",
                &format!(
                    "added inter-chunk gap, {} streams (µs p50/p99/p99.9)",
                    args.streams
                ),
            )
            .direct(Cell::dist(&sd.gap))
            .gateway(Cell::dist(&sg.gap))
            .added(Cell::triple(gap))
            .target("no stall (gap > 1 s)", sg.stalls == 0 && sg.errors == 0)
            .errors(sg.errors),
        );
        report.raw("streams", json!({"direct": sd, "gateway": sg}));
        rss_open_streams = Some(rss_streams);
    }

    // Many streams: each process holds them all at once (file descriptors: see bench/run.sh).
    let mut rss_many = None;
    if args.runs("many-streams") && args.many_streams > 0 {
        let n = args.many_streams;
        let chunks = args.many_stream_chunks.max(2);
        let model = &format!("bench-base+chunks={chunks}+chunk_delay=500");
        // Every connection finishes at least one stream.
        let seconds = secs(n as f64 * 200e-6 + chunks as f64 * 0.5 + 2.0);
        let sd = load::streams(
            &Target {
                body: chat_body(model, PROMPT, true),
                ..direct.clone()
            },
            n,
            load::Transport::Http1,
            seconds,
            || {},
        )
        .await?;
        let (rss, sample) = rss_sampler(dp.pid()?);
        let sg = load::streams(
            &Target {
                body: chat_body(model, PROMPT, true),
                ..base.clone()
            },
            n,
            // Callers over HTTP/2 (100 streams per connection): with HTTP/1.1 on both sides the
            // data plane would need 2 sockets per stream, over the machine's 20,000 open files.
            load::Transport::Http2 {
                connections: n.div_ceil(100),
            },
            seconds,
            sample,
        )
        .await?;
        rss_many = Some(rss.lock().map(|m| *m).unwrap_or(0));
        let ttft = added(&sg.ttft, &sd.ttft);
        progress(&format!(
            "{n} streams: {} done, added ttft {ttft:?}, stalls {}, errors {} (direct: {} stalls, {} errors{})",
            sg.streams,
            sg.stalls,
            sg.errors,
            sd.stalls,
            sd.errors,
            sg.first_error
                .as_deref()
                .map(|e| format!("; first gateway error: {e}"))
                .unwrap_or_default()
        ));
        report.row(
            Row::new(
                "many_streams",
                &format!(
                    "{n} concurrent streams (callers on HTTP/2): streams completed; stalls (gap > 1 s); added time to first token p50/p99 µs"
                ),
            )
            .direct(Cell::text(format!(
                "{}; {} stalls; ttft {} / {}",
                sd.streams, sd.stalls, sd.ttft.p50, sd.ttft.p99
            )))
            .gateway(Cell::text(format!(
                "{}; {} stalls; ttft {} / {}",
                sg.streams, sg.stalls, sg.ttft.p50, sg.ttft.p99
            )))
            .added(Cell::text(format!("{} / {}", ttft[0], ttft[1])))
            .target(
                "no stall, 0 errors",
                sg.stalls == 0 && sg.errors == 0 && sg.streams >= n as u64,
            )
            .errors(sg.errors),
        );
        report.raw("many_streams", json!({"direct": sd, "gateway": sg}));
    }

    let mb = |b: u64| format!("{:.1}", b as f64 / 1e6);
    report.row(
        Row::new("rss_idle", "data-plane resident memory, idle (MB)")
            .gateway(Cell::text(mb(idle)))
            .target("<20", idle < 20_000_000)
            .value(idle as f64),
    );
    if let Some(r) = rss_5000 {
        report.row(
            Row::new(
                "rss_5000",
                "data-plane resident memory, peak at 5000 req/s (MB)",
            )
            .gateway(Cell::text(mb(r)))
            .target("<80", r < 80_000_000)
            .value(r as f64),
        );
    }
    let memory_rows = [
        (
            "rss_max",
            "data-plane resident memory, peak at max throughput (MB)".to_owned(),
            peak_max,
        ),
        (
            "rss_many_streams",
            format!(
                "data-plane resident memory, {} open streams (MB)",
                args.many_streams
            ),
            rss_many,
        ),
        (
            "rss_streams",
            format!(
                "data-plane resident memory, {} open streams (MB)",
                args.streams
            ),
            rss_open_streams,
        ),
    ];
    for (id, label, bytes) in memory_rows {
        if let Some(b) = bytes {
            report.row(
                Row::new(id, &label)
                    .gateway(Cell::text(mb(b)))
                    .value(b as f64),
            );
        }
    }
    dp.stop().await;
    Ok(())
}

/// The soak: the base route at a steady rate, in windows; resident memory at the end of each.
/// Memory must not grow: the last minute's mean may be at most 10% above the first minute's
/// (after one window of warm-up).
async fn soak(args: &Args, base: &Target, dp: &Proc, report: &mut Report) -> anyhow::Result<()> {
    let windows = (args.soak_seconds / args.soak_window).ceil().max(2.0) as usize;
    let mut rss = Vec::with_capacity(windows);
    let mut p99 = Vec::with_capacity(windows);
    let mut errors = 0;
    let mut ok = 0;
    for _ in 0..windows {
        let r = load::open_loop(base, args.soak_rate, secs(args.soak_window), 256).await?;
        check(&r, "soak");
        errors += r.errors;
        ok += r.ok;
        p99.push(r.latency.p99);
        rss.push(dp.rss()?);
    }
    // Windows per minute, at least one; the first window is warm-up.
    let per_minute = ((60.0 / args.soak_window).round() as usize).clamp(1, (windows - 1).max(1));
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let first = mean(&rss[1.min(windows - 1)..(1 + per_minute).min(windows)]);
    let last = mean(&rss[windows.saturating_sub(per_minute)..]);
    let growth = (last - first) / first.max(1.0);
    let max = rss.iter().copied().max().unwrap_or(0);
    progress(&format!(
        "soak {:.0} s at {}/s: RSS first minute {:.1} MB, last minute {:.1} MB ({:+.1}%), max {:.1} MB; p99 first {} µs, last {} µs; {errors} errors",
        args.soak_seconds,
        args.soak_rate,
        first / 1e6,
        last / 1e6,
        growth * 100.0,
        max as f64 / 1e6,
        p99.first().copied().unwrap_or(0),
        p99.last().copied().unwrap_or(0),
    ));
    report.row(
        Row::new(
            "soak",
            &format!(
                "soak, {:.0} s at {} req/s: resident memory first → last minute (MB); p99 first → last window (µs)",
                args.soak_seconds, args.soak_rate
            ),
        )
        .gateway(Cell::text(format!(
            "{:.1} → {:.1} MB ({:+.1}%), max {:.1}; p99 {} → {}",
            first / 1e6,
            last / 1e6,
            growth * 100.0,
            max as f64 / 1e6,
            p99.first().copied().unwrap_or(0),
            p99.last().copied().unwrap_or(0),
        )))
        .target("no growth (<10%), 0 errors", growth < 0.10 && errors == 0)
        .errors(errors)
        .value(last),
    );
    report.raw(
        "soak",
        json!({"rss_bytes": rss, "p99_us": p99, "ok": ok, "errors": errors,
            "rate": args.soak_rate, "window_s": args.soak_window}),
    );
    Ok(())
}

/// Section 2: compile time, snapshot size, edit→served, snapshot apply, operator memory.
async fn control_plane(args: &Args, mock: SocketAddr, report: &mut Report) -> anyhow::Result<()> {
    for &n in args.cr_counts.iter().filter(|_| args.runs("compile")) {
        let inv = manifests::inventory(&manifests::generated(n, mock))?;
        let mut times = Vec::new();
        let mut size = 0;
        let runs = if n >= 10_000 { 3 } else { 5 };
        for _ in 0..runs {
            let t = Instant::now();
            let compiled = switchyard_crds::compile::compile(&inv);
            times.push(t.elapsed());
            size = serde_json::to_vec(&compiled.snapshot)?.len();
        }
        times.sort();
        let median = times[times.len() / 2];
        let ms = median.as_secs_f64() * 1e3;
        progress(&format!(
            "compile {n} CRs: {ms:.1} ms, snapshot {size} bytes"
        ));
        let mut row = Row::new(
            &format!("compile_{n}"),
            &format!("compile {n} CRs (ms, median of {runs}; snapshot JSON KB)"),
        )
        .gateway(Cell::text(format!("{ms:.1} ms; {} KB", size / 1000)))
        .value(ms);
        if n == 10_000 {
            row = row.target("<200 ms", ms < 200.0);
        }
        report.row(row);
        report.raw(
            &format!("compile_{n}"),
            json!({"median_ms": ms, "runs_ms": times.iter().map(|t| t.as_secs_f64() * 1e3).collect::<Vec<_>>(), "snapshot_bytes": size}),
        );
    }

    if args.edits > 0 && args.runs("edits") {
        edit_to_served(args, mock, report).await?;
    }
    if args.operator_crs > 0 && args.runs("operator") {
        operator_memory(args, mock, report).await?;
    }
    Ok(())
}

async fn edit_to_served(args: &Args, mock: SocketAddr, report: &mut Report) -> anyhow::Result<()> {
    let dir = args.work_dir.join("edits");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    manifests::write_files(&dir, "bulk", &manifests::generated(args.edit_crs, mock))?;
    let edit = dir.join("edit.yaml");
    manifests::write_atomic(&edit, &manifests::editable(mock, "edit-0"))?;
    let (dp, gw, admin) = start_data_plane(args, "dataplane-edits", &dir, &[]).await?;
    let probe = Target {
        addr: gw,
        path: CHAT.into(),
        headers: vec![],
        body: chat_body("anything", "hi", false),
    };
    let mut conn = load::connect(gw).await?;
    let mut hist = load::histogram()?;
    let mut failures = 0;
    for i in 1..=args.edits {
        let want = format!("model=edit-{i}");
        // Files are compared by size and mtime: keep the size changing is not needed, mtime is.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = Instant::now();
        manifests::write_atomic(&edit, &manifests::editable(mock, &format!("edit-{i}")))?;
        loop {
            if conn.is_closed() {
                conn = load::connect(gw).await?;
            }
            conn.ready().await?;
            let req = http::Request::post(CHAT)
                .header("host", gw.to_string())
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(probe.body.clone()))?;
            let resp = conn.send_request(req).await?;
            let route = resp
                .headers()
                .get("x-switchyard-route")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            if route.split(';').any(|part| part.trim() == want) {
                let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                failures += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let d = Dist::of(&hist);
    let (p50, p99) = (d.p50 as f64 / 1e3, d.p99 as f64 / 1e3);
    progress(&format!(
        "edit→served ({} CRs): p50 {p50:.0} ms p99 {p99:.0} ms",
        args.edit_crs
    ));
    report.row(
        Row::new(
            "edit_to_served",
            &format!(
                "manifest edit → route served, {} CRs, {} edits (ms p50/p99)",
                args.edit_crs, args.edits
            ),
        )
        .gateway(Cell::text(format!("{p50:.0} / {p99:.0}")))
        .target(
            "p50<200, p99<1000",
            p50 < 200.0 && p99 < 1000.0 && failures == 0,
        )
        .errors(failures),
    );
    // Snapshot apply time, from the data plane's own histogram.
    let (_, metrics) = procs::get(admin, "/metrics").await?;
    let metric = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
    };
    if let (Some(sum), Some(count)) = (
        metric("switchyard_snapshot_apply_seconds_sum"),
        metric("switchyard_snapshot_apply_seconds_count"),
    ) && count > 0.0
    {
        let mean_ms = sum / count * 1e3;
        report.row(
            Row::new(
                "snapshot_apply",
                &format!(
                    "data plane applies a snapshot, {} CRs (ms, mean)",
                    args.edit_crs
                ),
            )
            .gateway(Cell::text(format!("{mean_ms:.2}")))
            .target("<5", mean_ms < 5.0)
            .value(mean_ms),
        );
    }
    report.raw(
        "edit_to_served",
        json!({"ms": d, "failures": failures, "crs": args.edit_crs}),
    );
    dp.stop().await;
    Ok(())
}

async fn operator_memory(args: &Args, mock: SocketAddr, report: &mut Report) -> anyhow::Result<()> {
    let dir = args.work_dir.join("operator");
    let _ = std::fs::remove_dir_all(&dir);
    let manifests_dir = dir.join("manifests");
    std::fs::create_dir_all(&manifests_dir)?;
    manifests::write_files(
        &manifests_dir,
        "bulk",
        &manifests::generated(args.operator_crs, mock),
    )?;
    let token = dir.join("token");
    std::fs::write(&token, "bench-token\n")?;
    let http = procs::free_addr()?;
    let argv: Vec<String> = [
        "--manifests",
        &manifests_dir.display().to_string(),
        "--local-token-file",
        &token.display().to_string(),
        "--store",
        &format!("sqlite://{}", dir.join("records.db").display()),
        "--http-listen",
        &http.to_string(),
        "--channel-listen",
        &procs::free_addr()?.to_string(),
        "--facade-listen",
        &procs::free_addr()?.to_string(),
        "--ca-out",
        &dir.join("ca.crt").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let t = Instant::now();
    let mut op = Proc::spawn(
        "operator",
        &args.gateway_cpu,
        &args.bin_dir.join("switchyard-operator"),
        &argv,
        &[("RUST_LOG".into(), "warn".into())],
        &args.work_dir.join("operator.log"),
    )?;
    procs::wait_http(&mut op, http, "/healthz", Duration::from_secs(60)).await?;
    while procs::get_status(http, "/readyz").await.unwrap_or(0) != 200 {
        anyhow::ensure!(op.running(), "the operator exited (see operator.log)");
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "operator not ready in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = t.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = op.rss()?;
    progress(&format!(
        "operator with {} CRs: ready in {:.1} s, RSS {} MB",
        args.operator_crs,
        ready.as_secs_f64(),
        rss / 1_000_000
    ));
    report.row(
        Row::new(
            "operator_rss",
            &format!(
                "operator resident memory, {} CRs, local mode (MB; s to ready)",
                args.operator_crs
            ),
        )
        .gateway(Cell::text(format!(
            "{:.1}; {:.1} s",
            rss as f64 / 1e6,
            ready.as_secs_f64()
        )))
        .value(rss as f64),
    );
    op.stop().await;
    Ok(())
}
