//! Support for the end-to-end tests: the built binaries and child processes that die with the test.

mod blackhole;
mod counter;
mod process;
mod receiver;
mod recorder;

pub use blackhole::Blackhole;
pub use counter::{Counter, Seen};
pub use process::{Finished, Running};
pub use receiver::Receiver;
pub use recorder::{Received, Recorder};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;

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
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace root")
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
