//! Child processes (mock upstream, data planes, operator, peers), pinned to CPUs with
//! `taskset`, killed when dropped; resident memory from `/proc/PID/status`.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// A running child process, killed on drop.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `program args` pinned to `cpus` (a `taskset -c` list; empty: not pinned), with
    /// stdout and stderr appended to `log`.
    pub fn spawn(
        name: &str,
        cpus: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {log:?}"))?;
        let err = out.try_clone()?;
        let mut cmd = if cpus.is_empty() {
            Command::new(program)
        } else {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        };
        cmd.args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({program:?})"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// Starts the mock upstream on a free port and returns it with its address (parsed from
    /// its one stdout line).
    pub async fn mock(bin: &Path, cpus: &str) -> anyhow::Result<(Self, SocketAddr)> {
        Self::announcing(
            "mock upstream",
            bin,
            cpus,
            &["--listen", "127.0.0.1:0", "--no-record"],
        )
        .await
    }

    /// Starts the floor relay (`switchyard-floor`) in front of `upstream`, pinned to `cpus`.
    pub async fn floor(
        bin: &Path,
        cpus: &str,
        upstream: SocketAddr,
    ) -> anyhow::Result<(Self, SocketAddr)> {
        let upstream = upstream.to_string();
        Self::announcing(
            "floor relay",
            bin,
            cpus,
            &["--listen", "127.0.0.1:0", "--upstream", &upstream],
        )
        .await
    }

    /// Starts a process that prints `... http://ADDR` on its first stdout line once listening.
    async fn announcing(
        name: &str,
        bin: &Path,
        cpus: &str,
        args: &[&str],
    ) -> anyhow::Result<(Self, SocketAddr)> {
        let mut cmd = if cpus.is_empty() {
            Command::new(bin)
        } else {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(bin);
            c
        };
        cmd.args(args)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("starting {bin:?}"))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .with_context(|| format!("the {name} did not start within 20 s"))??
            .with_context(|| format!("the {name} exited"))?;
        let addr = line
            .rsplit("http://")
            .next()
            .context("unexpected output")?
            .trim()
            .parse()
            .with_context(|| format!("parsing the {name}'s address from {line:?}"))?;
        Ok((
            Self {
                name: name.into(),
                child,
            },
            addr,
        ))
    }

    /// The process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("process already reaped")
    }

    /// Resident set size in bytes (VmRSS).
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(self.pid()?)
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it (SIGKILL) and waits.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// VmRSS of a process plus all its descendants (peers like LiteLLM fork workers), in bytes.
pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let own = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS")?
        * 1024;
    let mut total = own;
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            total += rss_of(child).unwrap_or(0);
        }
    }
    Ok(total)
}

/// A free loopback port (bound, then released).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Waits until `GET url_path` on `addr` answers with a status below 500 or `timeout` passes;
/// fails early when `proc` exits.
pub async fn wait_http(
    proc: &mut Proc,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if !proc.running() {
            bail!("{} exited during startup", proc.name);
        }
        if let Ok(status) = get_status(addr, path).await
            && status < 500
        {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!(
                "{} did not answer on {addr}{path} within {timeout:?}",
                proc.name
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` on a fresh connection; the status code.
pub async fn get_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    Ok(get(addr, path).await?.0)
}

/// `GET path` on a fresh connection; status and body.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use http_body_util::{BodyExt as _, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<bytes::Bytes>::new())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req)).await??;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
