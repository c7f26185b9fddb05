//! `switchyard-dataplane --demo`: the local quickstart in one command. Starts the bundled mock
//! upstream ([`switchyard_mock`]) on 127.0.0.1:8081 and the data plane on 127.0.0.1:8080 over the
//! quickstart samples (`config/samples/quickstart`, embedded in the binary so it runs from any
//! folder), prints what to try and serves until Ctrl-C.
//!
//! The samples are written to `$TMPDIR/switchyard-demo/manifests` at every start (with the mock's
//! address in the Providers' endpoints), where they can be edited while the demo runs; with
//! `--manifests` that folder is served instead, as it is. Interception records are appended to
//! `$TMPDIR/switchyard-demo/records.jsonl` unless `--records-file` says otherwise.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;
use switchyard_mock::{MockConfig, MockUpstream};

use crate::config::Config;

/// Address of the mock upstream with a bare `--demo` (the quickstart Providers point at it).
pub use crate::config::DEMO_MOCK_ADDR as DEFAULT_MOCK_ADDR;

/// Address the demo serves on unless `--listen` is given.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// Where the demo serves health and metrics unless `--admin-listen` says otherwise.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);

macro_rules! sample {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../config/samples/quickstart/", $name)),
        )
    };
}
/// The quickstart samples, file name and text, as in `config/samples/quickstart`.
pub const SAMPLES: [(&str, &str); 8] = [
    sample!("kustomization.yaml"),
    sample!("muxrule-catch-all.yaml"),
    sample!("muxrule-fim.yaml"),
    sample!("muxrule-python-chat.yaml"),
    sample!("provider-demo-backup.yaml"),
    sample!("provider-demo.yaml"),
    sample!("routerpolicy-smart-with-fallback.yaml"),
    sample!("workspace-default.yaml"),
];

/// A running demo: the mock upstream and the data plane.
#[derive(Debug)]
pub struct Demo {
    /// The data plane.
    pub gateway: crate::Running,
    /// The mock upstream.
    pub mock: MockUpstream,
    /// The manifests folder served.
    pub manifests: PathBuf,
    /// The records file.
    pub records_file: PathBuf,
}

impl Demo {
    /// Stops the data plane (draining), then the mock upstream.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        self.mock.shutdown().await;
    }

    /// What to try, with the actual addresses (printed by [`run`]).
    pub fn instructions(&self) -> String {
        let (gw, admin) = (self.gateway.addr, self.gateway.admin_addr);
        format!(
            "\nSwitchyard data plane on http://{gw} (demo), mock upstream on {}\n\
             Manifests: {} (edit them and the route changes within a second)\n\nTry:\n\n  \
             curl -s http://{gw}/v1/chat/completions -H 'content-type: application/json' \\\n    \
             -d '{{\"model\":\"demo-fast\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'\n\n  \
             curl -sN http://{gw}/v1/chat/completions -H 'content-type: application/json' \\\n    \
             -d '{{\"model\":\"demo-smart\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Stream, please\"}}]}}'\n\n  \
             curl -s http://{gw}/v1/messages -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \\\n    \
             -d '{{\"model\":\"demo-fast\",\"max_tokens\":100,\"messages\":[{{\"role\":\"user\",\"content\":\"Hi, Claude-style\"}}]}}'\n\n\
             Records: {}\nMetrics: http://{admin}/metrics    Ctrl-C to stop.\n",
            self.mock.base_url(),
            self.manifests.display(),
            self.records_file.display(),
        )
    }
}

/// Starts the demo of `config` (whose `demo` is set; without it the mock takes
/// [`DEFAULT_MOCK_ADDR`]): the mock upstream, then the data plane on `config.listen`. Without
/// `--manifests` the samples are written to `work/manifests`; without `--spool-dir` and
/// `--records-file` those go to `work` too.
pub async fn start(mut config: Config, work: &Path) -> anyhow::Result<Demo> {
    let mock_addr = match config.demo {
        Some(addr) => addr,
        None => DEFAULT_MOCK_ADDR.parse()?,
    };
    let mock = MockUpstream::start_with(mock_addr, MockConfig::default())
        .await
        .with_context(|| format!("starting the mock upstream on {mock_addr}"))?;
    let manifests = match config.manifests.clone() {
        Some(dir) => dir,
        None => {
            let dir = work.join("manifests");
            write_samples(&dir, mock.addr())?;
            dir
        }
    };
    config.manifests = Some(manifests.clone());
    config.spool_dir.get_or_insert_with(|| work.join("spool"));
    let records_file = config
        .records_file
        .get_or_insert_with(|| work.join("records.jsonl"))
        .clone();
    let gateway = crate::start(config)
        .await
        .context("starting the data plane")?;
    Ok(Demo {
        gateway,
        mock,
        manifests,
        records_file,
    })
}

/// `--demo`: [`start`] in `$TMPDIR/switchyard-demo` (on [`DEFAULT_LISTEN`] and
/// [`DEFAULT_ADMIN_LISTEN`] unless `--listen` / `--admin-listen` or their variables were given),
/// print the [instructions](Demo::instructions), serve until Ctrl-C.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    if !given("listen") {
        config.listen = DEFAULT_LISTEN;
    }
    if !given("admin_listen") {
        config.admin_listen = DEFAULT_ADMIN_LISTEN;
    }
    let work = std::env::temp_dir().join("switchyard-demo");
    let demo = start(config, &work).await?;
    // Telling the user what to try is the demo's job.
    #[allow(clippy::print_stdout)]
    {
        println!("{}", demo.instructions());
    }
    tokio::signal::ctrl_c().await?;
    demo.shutdown().await;
    Ok(())
}

/// Whether the command line or the environment set the flag with this id (the demo's listen
/// defaults differ from the data plane's: loopback only).
fn given(id: &str) -> bool {
    Config::command()
        .try_get_matches_from(std::env::args_os())
        .ok()
        .and_then(|m| m.value_source(id))
        .is_some_and(|source| source != clap::parser::ValueSource::DefaultValue)
}

/// Writes the [`SAMPLES`] into `dir` (created if needed, files overwritten), with the mock's
/// address `mock` in place of the samples' 127.0.0.1:8081.
pub fn write_samples(dir: &Path, mock: SocketAddr) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in SAMPLES {
        let path = dir.join(name);
        let text = text.replace(DEFAULT_MOCK_ADDR, &mock.to_string());
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample added to (or removed from) `config/samples/quickstart` must be added to (or
    /// removed from) [`SAMPLES`].
    #[test]
    fn samples_are_the_quickstart_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples/quickstart");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = SAMPLES.iter().map(|(name, _)| *name).collect();
        assert_eq!(on_disk, embedded, "update demo::SAMPLES");
    }

    #[test]
    fn mock_address_is_substituted() {
        let dir = std::env::temp_dir().join(format!("switchyard-demo-test-{}", std::process::id()));
        write_samples(&dir, "127.0.0.1:9999".parse().unwrap()).unwrap();
        let provider = std::fs::read_to_string(dir.join("provider-demo.yaml")).unwrap();
        assert!(provider.contains("http://127.0.0.1:9999/v1"), "{provider}");
        assert!(!provider.contains(DEFAULT_MOCK_ADDR));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
