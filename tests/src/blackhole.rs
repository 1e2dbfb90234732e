//! A real `blackhole` child process on 127.0.0.1, for the push-mode tests: started, killed and
//! started again on the same port.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::{Guard, blackhole};

/// A running blackhole; killed when dropped.
pub struct Blackhole {
    /// The process.
    child: Guard,
    /// Where it listens.
    addr: SocketAddr,
    /// Its flags, to start it again the same way.
    args: Vec<String>,
    /// Every stderr line so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Blackhole {
    /// Starts `blackhole --listen 127.0.0.1:0 ARGS` and waits until it listens.
    pub fn start(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        Self::spawn("127.0.0.1:0".parse().expect("an address"), args)
    }

    fn spawn(listen: SocketAddr, args: Vec<String>) -> Self {
        let mut child = Command::new(blackhole())
            .arg("--listen")
            .arg(listen.to_string())
            .args(&args)
            .env_remove("PORT")
            .env_remove("BLACKHOLE_STREAM_TOKEN")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("blackhole starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let child = Guard(child);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let addr = line.split("listening on ").nth(1).and_then(|rest| rest.split_whitespace().next());
                if let Some(addr) = addr.and_then(|addr| addr.parse::<SocketAddr>().ok()) {
                    let _ = tx.send(addr);
                }
                lines.lock().expect("log lock").push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the blackhole did not log its address; stderr: {:?}", log.lock().unwrap()));
        Self { child, addr, args, log }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Kills it with SIGKILL: no drain, every stream cut mid-way.
    pub fn kill(self) -> (SocketAddr, Vec<String>) {
        self.child.signal(libc::SIGKILL);
        (self.addr, self.args.clone())
    }

    /// Starts a blackhole again where a killed one listened, with the same flags.
    pub fn restart((addr, args): (SocketAddr, Vec<String>)) -> Self {
        Self::spawn(addr, args)
    }

    /// Its log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}
