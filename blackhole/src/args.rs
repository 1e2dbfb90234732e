//! The blackhole's command line, turned into the server's [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use blackhole::Config;
use clap::Parser;

/// An HTTP server that answers 200 to every request and keeps nothing.
///
/// Point GitHub webhooks at it so that GitHub records their deliveries for hookfwd to poll.
#[derive(Parser)]
#[command(version, about)]
pub struct Args {
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

impl Args {
    /// The address to bind: `--listen`, else `0.0.0.0:$PORT`, else `0.0.0.0:8080`.
    ///
    /// `PORT` is what Cloud Run, Render, Heroku and Fly.io set; it is passed in, not read here.
    pub fn listen_addr(&self, port: Option<String>) -> anyhow::Result<SocketAddr> {
        let port = match (self.listen, port) {
            (Some(addr), _) => return Ok(addr),
            (None, Some(port)) => port.parse().with_context(|| format!("PORT={port:?} is not a port number"))?,
            (None, None) => 8080,
        };
        Ok(SocketAddr::from(([0, 0, 0, 0], port)))
    }

    /// The server configuration, reading the TLS files if given.
    pub fn config(&self) -> anyhow::Result<Config> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(blackhole::load_tls(cert, key)?),
            _ => None,
        };
        Ok(Config {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections as usize,
            drain_timeout: self.drain_timeout,
            log_requests: self.log_requests,
            tls,
        })
    }
}
