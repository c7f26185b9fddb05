//! `switchyard-operator`: see the crate docs and `--help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = switchyard_operator::config::Config::parse();
    switchyard_operator::run::init_tracing(config.log_format);
    // kube, reqwest and the channel's TLS all use rustls: one process-wide provider (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(switchyard_operator::run::run(config))
}
