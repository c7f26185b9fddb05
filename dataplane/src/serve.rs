//! The listener: accepts connections and serves the router on each with hyper (HTTP/1.1, and
//! HTTP/2 with prior knowledge), with the limits a proxy exposed to every pod needs:
//!
//! - a request head (request line and headers) larger than `max_header_bytes` is answered 431
//!   (HTTP/1.1) or refused by the HTTP/2 header-list limit;
//! - a client that does not send a complete head within `header_timeout` is disconnected
//!   (slow-loris);
//! - on shutdown it stops accepting, lets each connection finish its current requests and
//!   streams (HTTP/1.1 closes after the response, HTTP/2 sends GOAWAY), and returns when all are
//!   done; the caller bounds that wait with the drain deadline.
//!
//! Request bodies are bounded by the pipeline's body reader: in size (`--max-body-bytes`, 413,
//! refused from the declared `Content-Length` before any body byte is read) and in time
//! (`--body-timeout-ms`, 408, then the HTTP/1.1 connection is closed). Responses are streamed
//! with backpressure (a slow reader slows the upstream read, nothing is buffered without bound).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The smallest read buffer hyper accepts for HTTP/1.1 (it panics below this).
const MIN_HEADER_BYTES: usize = 8192;

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request head, bytes (at least 8 KiB).
    pub max_header_bytes: usize,
    /// Time to send a complete request head.
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` turns true, then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    conns.spawn(connection(tcp, remote, router.clone(), limits, stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
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
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let service = TowerToHyperService::new(router);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Duration::from_secs(30));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
