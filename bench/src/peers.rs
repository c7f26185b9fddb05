//! Peer gateways, installed by `bench/peers.sh` under `target/bench-peers/NAME`, configured for
//! the same mock route, pinned to the same CPU as the data plane and driven by the same load.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::load::{self, Target};
use crate::procs::{self, Proc};
use crate::report::Report;
use crate::{Args, CHAT, PROMPT, chat_body, progress, secs, with_peak_rss};

/// LiteLLM refuses to start without a master key; callers present it.
const LITELLM_KEY: &str = "sk-switchyard-bench-7f3c9a1e5b2d4c6f8a0e";

struct Launch {
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    ready_path: &'static str,
    headers: Vec<(String, String)>,
}

/// The last non-empty line of a log, without terminal colours, at most 200 characters.
fn last_line(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip an escape sequence up to its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out.trim().chars().take(200).collect()
}

/// The reason `bench/peers.sh` gave for not installing a peer, if it wrote one.
fn install_status(args: &Args, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(args.peers_dir.join("status.txt")).ok()?;
    let prefix = format!("peer {name}: skipped: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_owned)
}

fn launch(args: &Args, name: &str, mock: SocketAddr, port: u16) -> anyhow::Result<Launch> {
    let dir = args.peers_dir.join(name);
    let not_installed = || {
        install_status(args, name).unwrap_or_else(|| "not installed (run bench/peers.sh)".into())
    };
    let port_s = port.to_string();
    let worker = format!("http://{mock}");
    let router_args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(
            [
                "--host",
                "127.0.0.1",
                "--port",
                &port_s,
                "--worker-urls",
                &worker,
                "--policy",
                "round_robin",
                "--health-check-endpoint",
                "/health",
                "--worker-startup-timeout-secs",
                "30",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        v
    };
    Ok(match name {
        "litellm" => {
            let program = dir.join("bin/litellm");
            if !program.exists() {
                bail!(not_installed());
            }
            let config = args.work_dir.join("litellm.yaml");
            std::fs::write(
                &config,
                format!(
                    "model_list:\n  - model_name: bench-base\n    litellm_params:\n      model: openai/bench-base\n      api_base: http://{mock}/v1\n      api_key: dummy\nlitellm_settings:\n  telemetry: false\n"
                ),
            )?;
            Launch {
                program,
                args: vec![
                    "--config".into(),
                    config.display().to_string(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port_s.clone(),
                    "--num_workers".into(),
                    "1".into(),
                ],
                envs: vec![
                    ("LITELLM_MASTER_KEY".into(), LITELLM_KEY.into()),
                    ("LITELLM_LOG".into(), "ERROR".into()),
                    ("LITELLM_TELEMETRY".into(), "False".into()),
                ],
                ready_path: "/health/liveliness",
                headers: vec![("authorization".into(), format!("Bearer {LITELLM_KEY}"))],
            }
        }
        "vllm-router" => {
            let program = dir.join("bin/vllm-router");
            if !program.exists() {
                bail!(not_installed());
            }
            Launch {
                program,
                args: router_args(&["--log-level", "error"]),
                envs: vec![],
                ready_path: "/health",
                headers: vec![],
            }
        }
        "sglang-router" => {
            let program = dir.join("bin/python");
            if !program.exists() {
                bail!(not_installed());
            }
            Launch {
                program,
                args: router_args(&["-m", "sglang_router.launch_router", "--log-level", "error"]),
                envs: vec![],
                ready_path: "/health",
                headers: vec![],
            }
        }
        "portkey" => {
            let script = dir.join("node_modules/@portkey-ai/gateway/build/start-server.js");
            if !script.exists() {
                bail!(not_installed());
            }
            Launch {
                program: PathBuf::from("node"),
                args: vec![
                    script.display().to_string(),
                    format!("--port={port}"),
                    "--headless".into(),
                ],
                envs: vec![("NODE_ENV".into(), "production".into())],
                ready_path: "/",
                headers: vec![
                    ("x-portkey-provider".into(), "openai".into()),
                    ("x-portkey-custom-host".into(), format!("http://{mock}/v1")),
                    ("authorization".into(), "Bearer dummy".into()),
                ],
            }
        }
        other => bail!("unknown peer {other}"),
    })
}

/// Starts one peer, measures it like the data plane (one at a time, open loop at the rates,
/// closed loop) and fills its column.
pub async fn run(
    args: &Args,
    name: &str,
    mock: SocketAddr,
    report: &mut Report,
) -> anyhow::Result<()> {
    let addr = procs::free_addr()?;
    let l = launch(args, name, mock, addr.port())?;
    progress(&format!("peer {name}: starting on {addr}"));
    let log = args.work_dir.join(format!("peer-{name}.log"));
    let t = Instant::now();
    let mut p = Proc::spawn(name, &args.gateway_cpu, &l.program, &l.args, &l.envs, &log)?;
    procs::wait_http(
        &mut p,
        addr,
        l.ready_path,
        Duration::from_secs(args.peer_start_timeout),
    )
    .await
    .with_context(|| format!("{} (see {})", last_line(&log), log.display()))?;
    progress(&format!(
        "peer {name}: up after {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let target = Target {
        addr,
        path: CHAT.into(),
        headers: l.headers.clone(),
        body: chat_body("bench-base", PROMPT, false),
    };
    // A probe: the route must work before it is measured.
    let mut ok = false;
    let mut last = String::new();
    for _ in 0..50 {
        match load::fetch(&target).await {
            Ok((s, _, _)) if s.is_success() => {
                ok = true;
                break;
            }
            Ok((s, _, b)) => {
                last = format!(
                    "HTTP {s}: {}",
                    String::from_utf8_lossy(&b[..b.len().min(300)])
                )
            }
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !ok {
        bail!(
            "the route does not work through it: {last}; {} (see {})",
            last_line(&log),
            log.display()
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = p.rss()?;
    report.peer("rss_idle", name, format!("{:.1}", idle as f64 / 1e6));

    let serial = load::closed_loop(&target, 1, secs(args.seconds)).await?;
    if let Some(d) = report.baselines.get("serial_base") {
        let a = crate::added(&serial.latency, &d.latency);
        report.peer(
            "serial_base",
            name,
            format!("{} / {} / {}", a[0], a[1], a[2]),
        );
    }
    for &rate in &args.rates {
        let id = format!("open_{rate}");
        let r = load::open_loop(&target, rate, secs(args.seconds), 256).await?;
        if let Some(d) = report.baselines.get(&id) {
            let a = crate::added(&r.latency, &d.latency);
            let errors = if r.errors > 0 {
                format!(" ({} errors)", r.errors)
            } else {
                String::new()
            };
            let cell = if r.ok == 0 {
                // Nothing to subtract from: no latency to show.
                format!("none answered in time{errors}")
            } else {
                format!("{} / {} / {}{errors}", a[0], a[1], a[2])
            };
            report.peer(&id, name, cell);
        }
        report.raw(&format!("peer_{name}_{id}"), serde_json::json!(r));
    }
    let (tp, peak) = with_peak_rss(
        p.pid()?,
        load::closed_loop(&target, args.connections, secs(args.seconds)),
    )
    .await;
    let tp = tp?;
    let errors = if tp.errors > 0 {
        format!(" ({} errors)", tp.errors)
    } else {
        String::new()
    };
    report.peer(
        "max_throughput",
        name,
        format!("{:.0}; p99 {}{errors}", tp.rps, tp.latency.p99),
    );
    report.peer("rss_max", name, format!("{:.1}", peak as f64 / 1e6));
    report.raw(
        &format!("peer_{name}"),
        serde_json::json!({"serial": serial, "max": tp, "rss_idle": idle, "rss_peak": peak}),
    );
    progress(&format!("peer {name}: done ({:.0} req/s max)", tp.rps));
    p.stop().await;
    Ok(())
}
