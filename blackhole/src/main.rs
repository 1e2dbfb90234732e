//! The blackhole binary: parses flags, binds, and serves until SIGTERM or SIGINT.

mod args;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

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
    let shutdown = shutdown_signal()?;
    let config = args.config()?;
    let addr = args.listen_addr(std::env::var("PORT").ok())?;
    let listener = blackhole::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    Ok(blackhole::run(listener, config, shutdown).await?)
}

/// Resolves on SIGTERM or SIGINT. The handlers go in at once: as PID 1 in a container, a signal with no
/// handler is ignored.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C: Windows has no SIGTERM.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    Ok(async {
        // An error means no handler could be installed: then only killing the process stops it.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}
