//! The listener: accepts connections and serves a router on each with hyper (HTTP/1.1, and
//! HTTP/2 by prior knowledge or, over TLS, by ALPN), with the limits a server exposed to every
//! pod needs:
//!
//! - a request head (request line and headers) larger than [`Limits::max_header_bytes`] is
//!   answered 431 (HTTP/1.1) or refused by the HTTP/2 header-list limit;
//! - a client that does not send a complete head within [`Limits::header_timeout`] is
//!   disconnected (slow-loris), and one that does not finish the TLS handshake within
//!   [`HANDSHAKE_TIMEOUT`] too;
//! - on [`Server::shutdown`] it stops accepting, lets each connection finish its current
//!   requests and streams (HTTP/1.1 closes after the response, HTTP/2 sends GOAWAY), and
//!   closes what is still open when the grace period is over.
//!
//! Every request carries its peer as a [`RemoteAddr`] extension.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The smallest read buffer hyper accepts for HTTP/1.1 (it panics below this).
const MIN_HEADER_BYTES: usize = 8192;

/// How long a client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The peer address of a connection, in the extensions of each of its requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request head, bytes (at least 8 KiB); `None`: hyper's defaults.
    pub max_header_bytes: Option<usize>,
    /// Time to send a complete request head.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: None,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// How to serve.
#[derive(Clone, Default)]
pub struct Options {
    /// What the listener is for, as the `listener` field of its log lines.
    pub name: &'static str,
    /// Connection limits.
    pub limits: Limits,
    /// Serve TLS with this acceptor (HTTP/2 or HTTP/1.1 by ALPN); `None`: plain text.
    pub tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A running server (see [`serve`]).
#[derive(Debug)]
#[must_use = "dropping the handle leaves the server running; call shutdown to stop it"]
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, asks open connections to finish their current requests and streams,
    /// and after `grace` closes what is still open. Returns whether every connection finished
    /// within `grace`.
    pub async fn shutdown(self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
            return false;
        }
        true
    }
}

/// Serves `router` on `listener` until [`Server::shutdown`] (see the module docs).
pub fn serve(listener: TcpListener, router: Router, options: Options) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, router, options, stop_rx));
    Ok(Server { addr, stop, task })
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    options: Options,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    conns.spawn(connection(tcp, remote, router.clone(), options.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(listener = options.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn connection(
    tcp: TcpStream,
    remote: SocketAddr,
    router: Router,
    options: Options,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let name = options.name;
    let Some(acceptor) = options.tls else {
        return http(tcp, remote, router, options.limits, name, stop).await;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => http(tls, remote, router, options.limits, name, stop).await,
        Ok(Err(e)) => tracing::debug!(listener = name, %remote, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(listener = name, %remote, "TLS handshake timed out"),
    }
}

async fn http<S>(
    io: S,
    remote: SocketAddr,
    router: Router,
    limits: Limits,
    name: &'static str,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut req: axum::extract::Request<_>| {
        req.extensions_mut().insert(RemoteAddr(remote));
        req
    });
    let service = TowerToHyperService::new(service);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    if let Some(n) = limits.max_header_bytes {
        http1.max_buf_size(n.max(MIN_HEADER_BYTES));
    }
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30));
    if let Some(n) = limits.max_header_bytes {
        http2.max_header_list_size(u32::try_from(n).unwrap_or(u32::MAX));
    }
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(listener = name, %remote, error = %e, "connection ended with an error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    #[tokio::test]
    async fn serves_gives_the_peer_and_drains_on_shutdown() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let router = Router::new().route(
            "/peer",
            get(
                |axum::Extension(RemoteAddr(peer)): axum::Extension<RemoteAddr>| async move {
                    peer.ip().to_string()
                },
            ),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = serve(
            listener,
            router,
            Options {
                name: "test",
                ..Options::default()
            },
        )
        .unwrap();
        let url = format!("http://{}/peer", server.local_addr());
        let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        assert_eq!(body, "127.0.0.1");
        assert!(server.shutdown(Duration::from_secs(5)).await, "drained");
        assert!(reqwest::get(&url).await.is_err(), "no longer accepting");
    }
}
