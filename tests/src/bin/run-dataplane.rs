//! The data plane as a separate process for the real-process tests: the same code as
//! `switchyard-dataplane` (its `main` is these lines), built in this package so tests can find
//! it through `CARGO_BIN_EXE_*`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = switchyard_dataplane::config::Config::parse();
    switchyard_dataplane::init_tracing(config.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(switchyard_dataplane::run(config))
}
