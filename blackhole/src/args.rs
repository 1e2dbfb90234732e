//! The blackhole's command line, turned into the server's [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use blackhole::{Config, RedisUrl, RedisUrlError, StreamConfig, Tokens};
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
    /// Largest request body (GitHub sends at most 25 MB); larger gets 413, before reading when declared
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = parse_size)]
    max_body: u64,
    /// Time a client gets to send a whole request body, however steadily it trickles; then 408.
    /// GitHub gives up on a delivery after 10 s, so a slower body is not one GitHub is waiting on
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    body_timeout: Duration,
    /// How long a body may arrive slower than --body-min-rate (hidden: a test seam, see docs/deploy.md)
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration, hide = true)]
    body_grace: Duration,
    /// Bytes per second a body must average after the grace; 0 for no floor (hidden, as --body-grace)
    #[arg(long, value_name = "SIZE", default_value = "1KiB", value_parser = parse_size, hide = true)]
    body_min_rate: u64,
    /// Most connections open at once from one client address; 0 for no limit (behind a proxy, where every
    /// client has the proxy's address)
    #[arg(long, value_name = "N", default_value_t = 64, env = "BLACKHOLE_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: usize,
    /// Stream every POST to the hookfwd subscribed to its path, for a client whose bearer token opens
    /// that path: /PATH=TOKEN opens PATH and the paths below it, TOKEN alone every path, and sha256:HEX
    /// stands for the token of that SHA-256. Repeatable, or comma-separated; several tokens for one path
    /// are all valid (to rotate one)
    #[arg(long, value_name = "[/PATH=]TOKEN", env = "BLACKHOLE_STREAM_TOKEN", hide_env_values = true)]
    stream_token: Vec<String>,
    /// Most deliveries one path's replay buffer keeps
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    stream_buffer_count: u32,
    /// Most bytes one path's replay buffer keeps
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = parse_size)]
    stream_buffer_bytes: u64,
    /// How long a delivery stays in the replay buffer
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    stream_buffer_age: Duration,
    /// Most bytes streaming holds in all: every path's buffered deliveries, POST bodies being read (one
    /// address's at most half), path names and frames being sent
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    stream_buffer_total: u64,
    /// Longest silence on a stream before a keep-alive comment
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    stream_keepalive: Duration,
    /// Most streams served at once; more get 503 with Retry-After
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_subscribers: u32,
    /// Share every path's stream with the other instances behind this URL through Redis
    /// (redis://[:PASSWORD@]HOST:PORT[/DB], rediss:// for TLS): each POST is appended to a Redis Stream
    /// (keys blackhole:{PATH}:*, trimmed to the --stream-buffer-* bounds), so a subscriber on any
    /// instance gets it and resumes on any instance. While Redis cannot take a POST, it is answered 503
    /// (GitHub records a failed delivery; hookfwd fetches it from the API). Needs --stream-token
    #[arg(long, value_name = "URL", env = "BLACKHOLE_REDIS_URL", hide_env_values = true, requires = "stream_token")]
    redis: Option<String>,
}

/// Parses a byte size: a number with an optional unit (`B`, `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size such as 32MiB"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?}; use B, KiB, MiB, GiB, KB, MB or GB")),
    };
    number.checked_mul(scale).ok_or_else(|| format!("{text:?} is too large"))
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
            max_body: self.max_body,
            body_timeout: self.body_timeout,
            body_grace: self.body_grace,
            body_min_rate: self.body_min_rate,
            max_connections_per_ip: self.max_connections_per_ip,
            stream: self.stream_config()?,
        })
    }

    /// The streaming configuration, when a stream token is given.
    fn stream_config(&self) -> anyhow::Result<Option<StreamConfig>> {
        if self.stream_token.is_empty() {
            return Ok(None);
        }
        // Repeated flags are one list, as the variable's commas make it.
        let tokens = Tokens::parse(&self.stream_token.join(",")).context("--stream-token (BLACKHOLE_STREAM_TOKEN)")?;
        if let Some(warning) = tokens.mixed_scopes() {
            tracing::warn!("{warning}");
        }
        // An empty value (a template's unset variable) is no URL, as for an unset one.
        let redis = match self.redis.as_deref().filter(|url| !url.is_empty()) {
            None => None,
            Some(_) if !cfg!(feature = "redis") => return Err(RedisUrlError::NotBuiltIn.into()),
            Some(url) => Some(RedisUrl::parse(url)?),
        };
        let usize_of = |size: u64| usize::try_from(size).unwrap_or(usize::MAX);
        Ok(Some(StreamConfig {
            tokens,
            buffer_count: self.stream_buffer_count as usize,
            buffer_bytes: usize_of(self.stream_buffer_bytes),
            buffer_age: self.stream_buffer_age,
            buffer_total: usize_of(self.stream_buffer_total),
            keepalive: self.stream_keepalive.max(Duration::from_millis(10)),
            max_subscribers: self.max_subscribers as usize,
            redis,
        }))
    }
}
