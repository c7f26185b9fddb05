//! `switchyard-demo`: the local quickstart in one command. Starts the mock upstream on
//! 127.0.0.1:8081 (the demo provider of `config/samples/quickstart`) and the real data plane on
//! 127.0.0.1:8080 over those samples, then waits for Ctrl-C. Interceptions are appended to
//! `target/switchyard-demo/records.jsonl`.

// Telling the user what to try is this binary's job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use switchyard_dataplane::config::{Config, LogFormat};
use switchyard_mock::{MockConfig, MockUpstream};

/// Local quickstart: mock upstream + data plane on the quickstart samples.
#[derive(Debug, Parser)]
#[command(name = "switchyard-demo")]
struct Args {
    /// Data plane address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Mock upstream address (the quickstart Providers point at 127.0.0.1:8081).
    #[arg(long, default_value = "127.0.0.1:8081")]
    upstream: SocketAddr,
    /// Manifests folder.
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Make the mock require this `x-api-key` on its Anthropic dialect (to check api_key auth).
    #[arg(long, env = "SWITCHYARD_MOCK_ANTHROPIC_KEY", hide_env_values = true)]
    mock_anthropic_key: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    switchyard_dataplane::init_tracing(LogFormat::Plain);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifests = args
        .manifests
        .unwrap_or_else(|| root.join("config/samples/quickstart"));
    let work = root.join("target/switchyard-demo");
    std::fs::create_dir_all(&work)?;
    let mock_config = MockConfig {
        anthropic_key: args.mock_anthropic_key.clone(),
        ..MockConfig::default()
    };
    let mock = MockUpstream::start_with(args.upstream, mock_config)
        .await
        .context("starting the mock upstream")?;
    let mut config = <Config as clap::Parser>::try_parse_from(["switchyard-dataplane"])?;
    config.listen = args.listen;
    config.manifests = Some(manifests.clone());
    config.spool_dir = Some(work.join("spool"));
    config.spool_max_bytes = 64 << 20;
    config.records_file = Some(work.join("records.jsonl"));
    config.connect_timeout_ms = 5_000;
    config.drain_timeout_ms = 5_000;
    config.log_format = LogFormat::Plain;
    let gateway = switchyard_dataplane::start(config)
        .await
        .context("starting the data plane")?;
    let gw = gateway.addr;
    println!(
        "\nSwitchyard data plane on http://{gw} (manifests: {}), mock upstream on {}\n\
         Edit the manifests and the route changes within a second. Try:\n\n  \
         curl -s http://{gw}/v1/chat/completions -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"demo-fast\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'\n\n  \
         curl -sN http://{gw}/v1/chat/completions -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"demo-smart\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Stream, please\"}}]}}'\n\n  \
         curl -s http://{gw}/v1/messages -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"demo-fast\",\"max_tokens\":100,\"messages\":[{{\"role\":\"user\",\"content\":\"Hi, Claude-style\"}}]}}'\n\n\
         Records: {}\nMetrics: http://{gw}/metrics    Ctrl-C to stop.\n",
        manifests.display(),
        mock.base_url(),
        work.join("records.jsonl").display(),
    );
    tokio::signal::ctrl_c().await?;
    gateway.shutdown().await;
    mock.shutdown().await;
    Ok(())
}
