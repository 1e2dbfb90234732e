//! The blackhole binary: parses flags, binds, and serves until SIGTERM or SIGINT (a second one: at once).

mod args;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

/// One thread: the server is I/O-bound, cheap hosts give one vCPU, and it avoids cross-thread wake-ups.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    keep_large_allocations_apart();
    let args = args::Args::parse();
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).with_target(false).init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("blackhole: {err:#}");
            // A malformed token list or Redis URL is a usage error, as clap's own are.
            let usage = err.is::<blackhole::TokenError>() || err.is::<blackhole::RedisUrlError>();
            if usage { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

/// Serves every allocation of 128 KiB or more (request bodies collected for streaming) with its own
/// mapping, as glibc does at first: it then grows in place and is returned at once when freed. Left
/// alone, glibc raises that threshold to the largest block freed so far, so after one 31 MiB body the
/// next are placed in the heap, copied as they grow and kept from the system when freed: 100 POSTs
/// of 31 MiB then peaked at 81 MiB with a 64 MiB `--stream-buffer-total`, 67 MiB with this.
fn keep_large_allocations_apart() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes the allocator's lock and only changes its parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

async fn run(args: args::Args) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let config = args.config()?;
    let addr = args.listen_addr(std::env::var("PORT").ok())?;
    let listener = blackhole::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let (first, shutdown) = tokio::sync::oneshot::channel::<()>();
    let second = async move {
        signals.next().await;
        // Fails only if the server has already returned, and then nothing waits on it.
        let _ = first.send(());
        // The first signal starts the drain; a second means "now", as in most servers.
        signals.next().await;
    };
    tokio::select! {
        served = blackhole::run(listener, config, async { drop(shutdown.await) }) => Ok(served?),
        () = second => anyhow::bail!("a second signal during the drain; exiting without waiting for it"),
    }
}

/// SIGTERM and SIGINT. The handlers go in at once: as PID 1 in a container, a signal with no handler is ignored.
#[cfg(unix)]
struct Signals(tokio::signal::unix::Signal, tokio::signal::unix::Signal);

#[cfg(unix)]
impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        Ok(Signals(term, int))
    }

    /// Resolves on the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.0.recv() => {}
            _ = self.1.recv() => {}
        }
    }
}

/// Ctrl-C: Windows has no SIGTERM.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals)
    }

    /// Resolves on the next Ctrl-C.
    async fn next(&mut self) {
        // An error means no handler could be installed: then only killing the process stops it.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
