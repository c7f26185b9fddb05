//! `switchyard-dataplane`: see the crate docs and `--help`.

use clap::Parser;

// jemalloc: about a fifth of the data plane's CPU per request went to glibc malloc/free (perf);
// with jemalloc the bench's maximum throughput went from 14k to 20.8k requests/s and its p99
// from 18 to 7 ms, at the same resident memory. mimalloc (v2 and v3) was as fast but held 2-5x
// the memory with 1,000 open streams.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let config = switchyard_dataplane::config::Config::parse();
    switchyard_dataplane::init_tracing(config.log_format);
    // kube and reqwest both use rustls; one process-wide provider (ring) avoids ambiguity.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if config.demo.is_some() {
        return runtime.block_on(switchyard_dataplane::demo::run(config));
    }
    runtime.block_on(switchyard_dataplane::run(config))
}
