//! What every test suite of hookfwd shares, each in one place: the built binaries, child processes that die
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
use std::process::{Child, Command};
use std::sync::OnceLock;
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

/// The path of the `hookfwd` binary, built on first use so that `cargo test` alone
/// always runs the current code.
pub fn hookfwd() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| bin("hookfwd")).clone()
}

/// The path of the `blackhole` binary, built on first use.
pub fn blackhole() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| bin("blackhole")).clone()
}

/// The path of the `fake-github` binary, built on first use.
pub fn fake_github() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| bin("fake-github")).clone()
}

fn bin(name: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--bin", name])
        .current_dir(workspace_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {name} failed");
    let path = target_dir().join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The workspace root.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit/ sits in the workspace root")
}

/// `target/debug`, found from this test executable (`target/debug/deps/e2e-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    exe.parent().and_then(Path::parent).expect("test binaries live in target/<profile>/deps").to_path_buf()
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
