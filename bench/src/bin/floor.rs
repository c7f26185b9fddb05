//! `switchyard-floor`: the least an HTTP proxy can do, as a floor for the benchmark's latency
//! rows. Each accepted HTTP/1.1 keep-alive connection gets its own upstream connection; every
//! request is forwarded as it came (method, path, headers, body) and the answer streamed back.
//! No routing, no parsing of bodies, no records, one thread.
//!
//! Pinned to the same CPU as the data plane, its added latency is what the machine charges for
//! one more process and two more loopback hops (on a virtual machine, mostly waking an idle
//! vCPU): the part of Switchyard's figure that no gateway code can remove.
//!
//!   switchyard-floor --listen 127.0.0.1:0 --upstream 127.0.0.1:8000
//!
//! Prints `listening on http://ADDR` once ready.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// A minimal HTTP/1.1 relay (the benchmark's floor).
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Upstream address (plain HTTP/1.1).
    #[arg(long)]
    upstream: SocketAddr,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (sock, _) = listener.accept().await?;
        let upstream = args.upstream;
        tokio::spawn(async move {
            if let Err(e) = relay(sock, upstream).await {
                eprintln!("connection: {e:#}");
            }
        });
    }
}

async fn relay(sock: TcpStream, upstream: SocketAddr) -> anyhow::Result<()> {
    sock.set_nodelay(true)?;
    let up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(up)).await?;
    tokio::spawn(conn);
    let sender = std::sync::Arc::new(tokio::sync::Mutex::new(sender));
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let sender = sender.clone();
        async move {
            let mut sender = sender.lock().await;
            sender.ready().await?;
            sender.send_request(req).await
        }
    });
    http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(sock), service)
        .await?;
    Ok(())
}
