//! A `hookfwd` child process whose output is collected as it arrives, for tests that watch it run.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Guard, PATIENCE, hookfwd};

/// A running `hookfwd`; killed when dropped.
pub struct Running {
    child: Guard,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    /// The threads reading stdout and stderr; each ends at its pipe's end of file.
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// What a finished `hookfwd` printed.
pub struct Finished {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl Finished {
    /// Each stdout line as JSON (for `--json` runs).
    pub fn json(&self) -> Vec<Value> {
        self.stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
    }

    /// Asserts that none of `secrets` (tokens, webhook secrets, key lines) appears on stdout or stderr.
    pub fn assert_never_printed(&self, secrets: &[&str]) {
        for secret in secrets {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "a secret was printed: {secret:.12}…\nstdout: {}\nstderr: {}",
                self.stdout,
                self.stderr
            );
        }
    }
}

impl Running {
    /// Starts `hookfwd ARGS` with a clean environment: `PATH` and `env` only.
    pub fn hookfwd<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>, env: &[(&str, &OsStr)]) -> Self {
        Self::hookfwd_reading(args, env, Stdio::null())
    }

    /// Like [`Running::hookfwd`], with `stdin` as its standard input (such as a pseudo-terminal).
    pub fn hookfwd_reading<S: AsRef<OsStr>>(
        args: impl IntoIterator<Item = S>,
        env: &[(&str, &OsStr)],
        stdin: Stdio,
    ) -> Self {
        let mut child = Command::new(hookfwd())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hookfwd starts");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines, out) = (stdout.clone(), child.stdout.take().expect("piped stdout"));
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().expect("output lock").push(line);
            }
        });
        let (text, mut err) = (stderr.clone(), child.stderr.take().expect("piped stderr"));
        let stderr_reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buffer) {
                text.lock().expect("output lock").push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Self { child: Guard(child), stdout, stderr, readers: vec![stdout_reader, stderr_reader] }
    }

    /// The process id, to read its `/proc` entries.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Everything on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("output lock").clone()
    }

    /// The stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lock().expect("output lock").clone()
    }

    /// Sends a signal (`libc::SIGTERM`, `libc::SIGKILL`, …).
    #[cfg(unix)]
    pub fn signal(&self, signal: i32) {
        self.child.signal(signal);
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub async fn wait_line(&self, needle: &str) -> String {
        self.wait_lines(needle, 1).await.swap_remove(0)
    }

    /// Waits for at least `count` stdout lines containing `needle` and returns them all.
    pub async fn wait_lines(&self, needle: &str, count: usize) -> Vec<String> {
        let check = async || {
            let lines: Vec<String> = self.lines().into_iter().filter(|line| line.contains(needle)).collect();
            (lines.len() >= count).then_some(lines)
        };
        let failure = || format!("no {count} `{needle}` lines; stdout: {:?}; stderr: {}", self.lines(), self.stderr());
        crate::poll(PATIENCE, check, failure).await
    }

    /// Waits for the process to exit and returns what it printed.
    pub async fn finish(mut self) -> Finished {
        let deadline = Instant::now() + PATIENCE;
        let code = loop {
            if let Some(status) = self.child.0.try_wait().expect("try_wait") {
                break status.code();
            }
            assert!(Instant::now() < deadline, "hookfwd did not exit; stderr: {}", self.stderr.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        // The reader threads end at the pipes' end of file, once they have read everything the process wrote.
        let readers = std::mem::take(&mut self.readers);
        let joined = tokio::task::spawn_blocking(move || readers.into_iter().all(|reader| reader.join().is_ok()));
        let joined = tokio::time::timeout(PATIENCE, joined).await;
        assert!(matches!(joined, Ok(Ok(true))), "the output of hookfwd was not read to its end");
        let stdout = self.lines().join("\n");
        let stderr = self.stderr.lock().expect("output lock").clone();
        Finished { code, stdout, stderr }
    }
}
