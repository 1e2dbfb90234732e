//! The blackhole binary: parses flags, binds, and serves until SIGTERM or SIGINT.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

/// An HTTP server that answers 200 to every request and keeps nothing.
///
/// Point GitHub webhooks at it so that GitHub records their deliveries for hookfwd to poll.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on [default: 0.0.0.0:$PORT, or 0.0.0.0:8080 when PORT is unset]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Time a client gets to send request headers; also how long an idle keep-alive connection stays open
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// Close a connection on which no byte has moved for this long (stalled body, unread response)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Most connections served at once; others wait in the kernel's backlog
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// On SIGTERM or SIGINT, how long to let in-flight requests finish
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Log one line per request: method, path, X-GitHub-Event, X-GitHub-Delivery, body bytes, duration
    #[arg(long)]
    log_requests: bool,
    /// PEM certificate chain; serve HTTPS with it and --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).with_target(false).init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("blackhole: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Handlers go in before anything else: as PID 1 in a container, a signal without one is ignored.
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(blackhole::load_tls(cert, key)?),
        _ => None,
    };
    let addr = match (args.listen, std::env::var("PORT")) {
        (Some(addr), _) => addr,
        (None, Ok(port)) => {
            SocketAddr::from(([0, 0, 0, 0], port.parse().context(format!("PORT={port:?} is not a port number"))?))
        }
        (None, Err(_)) => SocketAddr::from(([0, 0, 0, 0], 8080)),
    };
    let listener = bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let config = blackhole::Config {
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: args.max_connections as usize,
        drain_timeout: args.drain_timeout,
        log_requests: args.log_requests,
        tls,
    };
    let shutdown = async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    };
    Ok(blackhole::run(listener, config, shutdown).await?)
}

/// Binds with a deep backlog: clients beyond --max-connections wait there, and the default of 128 would drop their SYNs.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
