//! `switchyard-dataplane`: see the crate docs and `--help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = switchyard_dataplane::config::Config::parse();
    switchyard_dataplane::init_tracing(config.log_format);
    // kube and reqwest both use rustls; one process-wide provider (ring) avoids ambiguity.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(switchyard_dataplane::run(config))
}
