//! The tracing subscriber: plain text or one JSON object per line, filtered by `RUST_LOG`.

/// Log formats (the `--log-format` flag of both binaries).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable.
    Plain,
    /// One JSON object per line (for clusters).
    Json,
}

/// Installs the tracing subscriber in `format`, filtered by `RUST_LOG` (default `info`). Does
/// nothing when a subscriber is already installed (tests).
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
