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

/// Log lines kept in memory, for tests that assert on what was logged. Clones share the lines.
///
/// With [`tracing::subscriber::set_default`] only the current thread's events are seen (a
/// current-thread test runtime sees every task's), and tracing caches per callsite whether
/// any subscriber wants it: a callsite a subscriber-less sibling test reaches first may stay
/// silent. Assert on callsites only the test reaches, or install it globally
/// ([`Captured::install_global`]) in a test binary of its own.
#[derive(Clone, Debug, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// A plain-text subscriber (no colours) writing here, up to `max`.
    pub fn subscriber(&self, max: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let sink = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(max)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish()
    }

    /// Installs [`Self::subscriber`] as the process-wide default; false when one was already.
    pub fn install_global(&self, max: tracing::Level) -> bool {
        tracing::subscriber::set_global_default(self.subscriber(max)).is_ok()
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
