//! A real `redis-server` on a free loopback port, for the tests of the shared ledger: killed when
//! dropped, and stoppable and restartable on the same port mid-test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Guard;

/// A `redis-server` child, killed on drop: `--save '' --appendonly no` (memory only), or with
/// [`RedisServer::start_persistent`] the append-only file on in a temporary directory, so that a
/// restart (see [`RedisServer::stop`]) keeps the data, as a production Redis with persistence would.
pub struct RedisServer {
    /// The running server, if not stopped.
    child: Option<Guard>,
    /// Where it listens.
    addr: SocketAddr,
    /// Its data directory, removed when the server is dropped.
    dir: PathBuf,
    /// Whether it keeps an append-only file.
    persistent: bool,
}

impl RedisServer {
    /// Starts `redis-server` on a port free a moment ago and waits until it answers PING.
    ///
    /// Panics with a hint when `redis-server` is not installed (`scripts/test` installs it).
    pub fn start() -> Self {
        Self::launch(false)
    }

    /// [`RedisServer::start`] with every write in an append-only file, fsynced, so that a restart keeps it.
    pub fn start_persistent() -> Self {
        Self::launch(true)
    }

    fn launch(persistent: bool) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = std::env::temp_dir().join(format!("hookfwd-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory for redis-server");
        let mut server = Self { child: None, addr: SocketAddr::from(([127, 0, 0, 1], port)), dir, persistent };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills the server at once (SIGKILL: no shutdown save; the append-only file has every write).
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Starts the server again on the same port with the same data, and waits until it answers PING.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.addr.port().to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(if self.persistent {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "no"]
            })
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs the redis-server package)");
        self.child = Some(Guard(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers_ping() {
            assert!(Instant::now() < deadline, "redis-server on {} never answered PING", self.addr);
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Sends one command in Redis's inline form and returns the raw reply (for checks in tests).
    pub fn command(&self, line: &str) -> Option<String> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut reply = [0u8; 4096];
        let n = stream.read(&mut reply).ok()?;
        Some(String::from_utf8_lossy(&reply[..n]).into_owned())
    }

    fn answers_ping(&self) -> bool {
        self.command("PING").is_some_and(|reply| reply.starts_with("+PONG"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.child = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
