//! Running as a service: binds `--admin-listen`, feeds the relay's health monitor every event,
//! and watches for `--max-stall`.

use std::time::Duration;

use relay::Event;
use relay::service::Monitor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::args::ServiceArgs;
use crate::exit::{FAILURE, fail};

/// The health monitor of one run, and when to give up on it.
pub struct Service {
    /// Fed every event; serves the admin listener.
    monitor: Monitor,
    /// `--max-stall`.
    max_stall: Option<Duration>,
}

impl Service {
    /// Binds the admin listener if asked (before the relay starts, so that a taken address fails
    /// at once), and makes `client` count its calls in the metrics.
    pub async fn start(
        args: &ServiceArgs,
        interval: Duration,
        client: &github::Client,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let monitor = Monitor::new(interval);
        if let Some(addr) = args.admin_listen {
            // Exit 1, not 2: the flag is well formed; another process holds the address, which
            // is the machine's state at run time, like an unreachable GitHub.
            let listener = TcpListener::bind(addr).await.map_err(|error| match error.kind() {
                std::io::ErrorKind::AddrInUse => {
                    fail(FAILURE, format!("the admin address {addr} is already in use; choose another --admin-listen"))
                }
                _ => fail(FAILURE, format!("could not listen on the admin address {addr}: {error}")),
            })?;
            client.observe(monitor.github_observer());
            tracing::info!(%addr, "admin listener serving /healthz, /readyz and /metrics");
            tokio::spawn(relay::service::serve(listener, monitor.clone(), cancel.clone()));
        }
        Ok(Self { monitor, max_stall: args.max_stall })
    }

    /// Takes in one event of the run.
    pub fn observe(&self, event: &Event) {
        self.monitor.observe(event);
    }

    /// Resolves with one sentence once a source has stalled for longer than `--max-stall`;
    /// never without it.
    pub async fn stalled(&self) -> anyhow::Error {
        let Some(max_stall) = self.max_stall else { return std::future::pending().await };
        let every = (max_stall / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            if let Some(sentence) = self.monitor.stalled(max_stall) {
                return fail(FAILURE, format!("{sentence}; exiting so that a supervisor restarts hookfwd"));
            }
        }
    }
}
