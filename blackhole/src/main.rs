//! The blackhole binary: parses flags, binds, and serves until SIGTERM or SIGINT.

mod args;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

/// One thread: the server is I/O-bound, cheap hosts give one vCPU, and it avoids cross-thread wake-ups.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = args::Args::parse();
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

async fn run(args: args::Args) -> anyhow::Result<()> {
    // Handlers go in first: as PID 1 in a container, a signal with no handler is ignored.
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let config = args.config()?;
    let addr = args.listen_addr(std::env::var("PORT").ok())?;
    let listener = blackhole::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let (first, shutdown) = tokio::sync::oneshot::channel::<()>();
    let signals = async move {
        let mut first = Some(first);
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            // The first signal starts the drain; a second means "now", as in most servers.
            match first.take() {
                Some(first) => drop(first.send(())),
                None => return,
            }
        }
    };
    tokio::select! {
        served = blackhole::run(listener, config, async { drop(shutdown.await) }) => Ok(served?),
        () = signals => anyhow::bail!("a second signal during the drain; exiting without waiting for it"),
    }
}
