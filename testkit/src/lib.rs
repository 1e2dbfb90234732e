//! What every test suite of hookfwd shares, each in one place: the binaries Cargo built, child processes that die
//! with the test, a recording handler, the Octokit receiver, and polling until something holds.
//!
//! A real `redis-server` for the shared ledger's tests is here too.
//!
//! The kit depends on none of hookfwd's crates, so any of their tests can use it without building one twice.

mod octokit;
mod process;
mod recorder;
mod redis;

pub use octokit::OctokitReceiver;
pub use process::{Finished, Running};
pub use recorder::{Received, Recorder};
pub use redis::RedisServer;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen, before failing instead of hanging CI.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// What a polled check returns: `true`, or `Some(value)`, once it holds.
pub trait Holds {
    /// What [`eventually`] returns once the check holds.
    type Value;
    /// `Some` once the check holds.
    fn holds(self) -> Option<Self::Value>;
}

impl Holds for bool {
    type Value = ();
    fn holds(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Holds for Option<T> {
    type Value = T;
    fn holds(self) -> Option<T> {
        self
    }
}

/// Polls `check` every 25 ms until it holds and returns its value, or fails naming `what` after [`PATIENCE`].
/// `check` is an async closure, so it may ask a server (`async || list(&url).await.first().cloned()`).
///
/// Tests wait for an outcome this way, never with a fixed sleep before an assertion.
pub async fn eventually<H: Holds>(what: impl Display, check: impl AsyncFnMut() -> H) -> H::Value {
    poll(PATIENCE, check, || format!("timed out waiting for {what}")).await
}

/// [`eventually`] with its own time limit and failure message, for the kit's `wait_for` methods.
async fn poll<H: Holds>(
    timeout: Duration,
    mut check: impl AsyncFnMut() -> H,
    failure: impl Fn() -> String,
) -> H::Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await.holds() {
            return value;
        }
        assert!(Instant::now() < deadline, "{}", failure());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The `hookfwd` binary under test (see [`binary`]).
pub fn hookfwd() -> PathBuf {
    binary("hookfwd")
}

/// The `blackhole` binary under test (see [`binary`]).
pub fn blackhole() -> PathBuf {
    binary("blackhole")
}

/// The `fake-github` binary under test (see [`binary`]).
pub fn fake_github() -> PathBuf {
    binary("fake-github")
}

/// The binary `name` that Cargo built for this run, from `CARGO_BIN_EXE_<name>` in the environment.
///
/// Cargo sets that variable itself (at build and at run time) for the tests of the package that owns the
/// binary. The end-to-end tests run binaries of three packages, so `scripts/test` builds them with the
/// test profile and passes the paths Cargo reports for them (its `compiler-artifact` messages): the binary
/// under test is always the one just built, never a stale one found on disk, and no test runs `cargo build`.
pub fn binary(name: &str) -> PathBuf {
    let variable = format!("CARGO_BIN_EXE_{name}");
    let path = std::env::var_os(&variable).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{variable} is not set: run the end-to-end tests through scripts/test (`scripts/test e2e::` for \
             them alone), which builds the binaries and says where they are"
        )
    });
    assert!(path.is_file(), "{variable} names {}, which is not a file", path.display());
    path
}

/// A loopback address that was free a moment ago, for a flag that must be told a port (`--admin-listen`).
pub fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a bound address")
}

/// The workspace root.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit/ sits in the workspace root")
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
pub struct Guard(pub Child);

impl Guard {
    /// Sends a signal (`libc::SIGTERM`, `libc::SIGKILL`, …) to the process.
    #[cfg(unix)]
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill touches no memory; the pid is a child we have not reaped, so it cannot be reused.
        unsafe { libc::kill(self.0.id() as i32, signal) };
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
