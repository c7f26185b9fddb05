//! The `switchyard-mock-upstream` command line: runs the [mock upstream](crate) on a port until
//! SIGINT or SIGTERM.
//!
//! Prints exactly one line to stdout once it accepts connections:
//! `switchyard-mock-upstream listening on http://ADDR`. Scripts wait for and parse that line.

// The one stdout line is this binary's interface to scripts; startup errors go to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write as _;
use std::net::SocketAddr;

use crate::{DEFAULT_MODELS, DEFAULT_RESPONSE_CAPACITY, MockConfig, MockUpstream};
use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Mock LLM upstream speaking the OpenAI, Anthropic and Ollama dialects.
#[derive(Debug, Parser)]
#[command(name = "switchyard-mock-upstream", version)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "SWITCHYARD_MOCK_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Require `Authorization: Bearer KEY` on the OpenAI dialect.
    #[arg(long, env = "SWITCHYARD_MOCK_REQUIRE_KEY", hide_env_values = true)]
    require_key: Option<String>,
    /// Require `x-api-key: KEY` on the Anthropic dialect.
    #[arg(long, env = "SWITCHYARD_MOCK_ANTHROPIC_KEY", hide_env_values = true)]
    anthropic_key: Option<String>,
    /// Do not record requests (for benchmarks).
    #[arg(long)]
    no_record: bool,
    /// How many requests the log keeps.
    #[arg(long, default_value_t = 1000)]
    log_capacity: usize,
    /// Model ids to list (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = DEFAULT_MODELS)]
    models: Vec<String>,
    /// How many Responses API responses are kept for `GET /v1/responses/{id}` and
    /// `previous_response_id`.
    #[arg(long, default_value_t = DEFAULT_RESPONSE_CAPACITY)]
    response_capacity: usize,
}

/// The binary's `main`: parses the flags and serves until a signal (also the tests crate's
/// `run-mock-upstream`, so its tests find the binary through `CARGO_BIN_EXE_*`).
pub fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(Args::parse()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = MockConfig {
        require_key: args.require_key,
        anthropic_key: args.anthropic_key,
        record: !args.no_record,
        log_capacity: args.log_capacity,
        models: args.models,
        response_capacity: args.response_capacity,
    };
    let mock = MockUpstream::start_with(args.listen, config).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "switchyard-mock-upstream listening on {}",
        mock.base_url()
    )?;
    stdout.flush()?;
    drop(stdout);
    wait_for_signal().await?;
    mock.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
