//! End-to-end tests of the blackhole binary over real sockets on 127.0.0.1.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A running blackhole process, killed when dropped.
struct Server {
    /// The child process.
    child: Child,
    /// The address it announced in its `listening on` log line.
    addr: SocketAddr,
    /// Every stderr line so far, collected by a reader thread so the pipe never fills.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary on `127.0.0.1:0` with extra flags.
    fn start(args: &[&str]) -> Server {
        Server::spawn(&[&["--listen", "127.0.0.1:0"], args].concat(), &[])
    }

    /// Starts the binary with exactly these flags and environment, and waits for it to listen.
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn_with(Command::new(env!("CARGO_BIN_EXE_blackhole")), args, env)
    }

    /// Starts a prepared command with these flags and environment, and waits for it to listen.
    fn spawn_with(mut command: Command, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = command
            .args(args)
            .env_remove("PORT")
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn blackhole");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Keep the line before announcing the address, so the test sees it in the log.
                let addr = line
                    .split("listening on ")
                    .nth(1)
                    .map(|rest| rest.split_whitespace().next().unwrap_or_default().to_owned());
                lines.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().expect("listening address parses"),
            Err(_) => {
                let _ = child.kill();
                panic!("blackhole did not log its address; stderr: {:?}", log.lock().unwrap());
            }
        };
        Server { child, addr, log }
    }

    /// Opens a connection with a read timeout so that no test hangs.
    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    /// Sends raw bytes on a new connection and returns everything the server answers until it closes.
    fn exchange(&self, request: &[u8]) -> String {
        let mut stream = self.connect();
        stream.write_all(request).expect("write request");
        read_all(&mut stream)
    }

    /// Resident set size and its peak so far, in bytes, from /proc.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory effects; the pid is our own child, which has not been reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit, failing the test after `limit`.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "blackhole did not exit; stderr: {:?}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads until the peer closes or a read times out.
fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response head (up to the blank line) from a kept-alive connection.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("connection ended inside a response head: {other:?} after {head:?}"),
        }
    }
    String::from_utf8(head).unwrap()
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: blackhole\r\nConnection: close\r\n\r\n";

fn assert_ok(response: &str) {
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "expected a 200, got {response:?}");
}

#[test]
fn answers_200_to_any_method_and_path() {
    let server = Server::start(&[]);
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PURGE"];
    let paths = ["/", "/alice", "/a/b/c?x=1&y=2", "/%20odd", "http://elsewhere.example/absolute"];
    for method in methods {
        for path in paths {
            let request =
                format!("{method} {path} HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
            let response = server.exchange(request.as_bytes());
            assert_ok(&response);
            if method != "HEAD" {
                assert!(response.ends_with("\r\n\r\nok\n"), "tiny body missing for {method} {path}: {response:?}");
            }
        }
    }
    // HTTP/1.0 without a Host header is a request too.
    assert!(server.exchange(b"POST /x HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 200 OK\r\n"));
}

#[test]
fn absorbs_a_25_mib_chunked_body_without_holding_it() {
    let server = Server::start(&["--log-requests"]);
    // Let the runtime settle with one request before taking the baseline.
    assert_ok(&server.exchange(GET));
    let (baseline, _) = server.memory();

    let mut stream = server.connect();
    stream
        .write_all(b"POST /alice HTTP/1.1\r\nHost: b\r\nX-GitHub-Event: push\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let size_line = format!("{:x}\r\n", chunk.len());
    for _ in 0..400 {
        stream.write_all(size_line.as_bytes()).unwrap();
        stream.write_all(&chunk).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    assert_ok(&read_all(&mut stream));

    let (_, peak) = server.memory();
    let growth = peak.saturating_sub(baseline);
    assert!(growth < 8 * 1024 * 1024, "peak RSS grew by {growth} bytes over a baseline of {baseline}");
    // The server counted every byte, so it really read the body rather than dropping the connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log_text().contains("bytes=26214400") {
        assert!(Instant::now() < deadline, "no request line with the full size: {}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.log_text().contains("event=\"push\""));
}

/// Sends `bytes` one per second; returns how many went out before the server closed the connection.
fn trickle(stream: &mut TcpStream, bytes: &[u8]) -> Option<usize> {
    stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 512];
    for (sent, byte) in bytes.iter().enumerate() {
        if stream.write_all(&[*byte]).is_err() {
            return Some(sent);
        }
        match stream.read(&mut buf) {
            Ok(0) => return Some(sent + 1),
            Ok(_) => {} // hyper may answer before closing (a 408); keep going until it closes.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(sent + 1),
        }
    }
    None
}

#[test]
fn cuts_off_a_client_that_sends_headers_one_byte_per_second() {
    let server = Server::start(&["--header-timeout", "2s"]);
    let mut stream = server.connect();
    let head = b"POST /slow HTTP/1.1\r\nHost: blackhole\r\nX-GitHub-Event: push\r\n\r\n";
    let sent = trickle(&mut stream, head).expect("the server never cut off a slow header");
    // Two seconds at one byte a second, plus scheduling slack: far fewer bytes than the whole head.
    assert!(sent < 8, "the server waited for {sent} bytes");
    assert_ok(&server.exchange(GET));
}

#[test]
fn cuts_off_a_stalled_body() {
    let server = Server::start(&["--idle-timeout", "2s", "--header-timeout", "30s"]);
    let mut stream = server.connect();
    stream.write_all(b"POST /stall HTTP/1.1\r\nHost: b\r\nContent-Length: 100\r\n\r\n0123456789").unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let closed = match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("unexpected answer to an unfinished body: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    };
    assert!(closed, "the stalled connection was not cut within {:?}", started.elapsed());
    assert_ok(&server.exchange(GET));
}

#[test]
fn serves_or_cleanly_refuses_1000_concurrent_connections() {
    const CLIENTS: usize = 1000;
    let server = Server::start(&["--max-connections", "100"]);
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (served, refused) = runtime.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Open every connection first so that all 1000 are open at once, ten times the cap.
        let mut streams = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            streams.push(tokio::net::TcpStream::connect(addr).await);
        }
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|stream| {
                tokio::spawn(async move {
                    let mut stream = stream.ok()?;
                    stream.write_all(GET).await.ok()?;
                    let mut response = Vec::new();
                    stream.read_to_end(&mut response).await.ok()?;
                    Some(response)
                })
            })
            .collect();
        let (mut served, mut refused) = (0, 0);
        for task in tasks {
            match tokio::time::timeout(Duration::from_secs(60), task).await.expect("a client hung").unwrap() {
                Some(response) if response.starts_with(b"HTTP/1.1 200 OK\r\n") => served += 1,
                Some(response) if response.is_empty() => refused += 1,
                Some(response) => panic!("unexpected response {:?}", String::from_utf8_lossy(&response)),
                None => refused += 1,
            }
        }
        (served, refused)
    });
    assert_eq!(served + refused, CLIENTS);
    assert!(served >= 100, "only {served} of {CLIENTS} served ({refused} refused)");
    assert_ok(&server.exchange(GET));
}

#[test]
fn keeps_serving_when_accept_runs_out_of_file_descriptors() {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_blackhole"));
    // SAFETY: setrlimit is async-signal-safe and touches only the child being set up.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 24, rlim_max: 24 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = Server::spawn_with(command, &["--listen", "127.0.0.1:0", "--max-connections", "100"], &[]);
    // Silent clients hold their descriptors until the fd limit, not the connection cap, stops accept.
    let mut held: Vec<TcpStream> = (0..40).map(|_| server.connect()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log_text().contains("accept failed") {
        assert!(Instant::now() < deadline, "accept never failed: {}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.log_text().contains("Too many open files"), "{}", server.log_text());
    held.clear();
    // Once the clients are gone the descriptors come back, and so does service.
    assert_ok(&server.exchange(GET));
}

#[test]
fn malformed_requests_get_400_and_the_server_stays_up() {
    let server = Server::start(&[]);
    let big_header = format!("GET / HTTP/1.1\r\nHost: b\r\nX-Big: {}\r\n\r\n", "a".repeat(100 * 1024));
    let garbage: [&[u8]; 6] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: b\r\nContent-Length: nope\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET /\x01\x02 HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello to a plain port\r\n\r\n",
        big_header.as_bytes(),
    ];
    for request in garbage {
        let response = server.exchange(request);
        assert!(
            response.is_empty() || response.starts_with("HTTP/1.1 400") || response.starts_with("HTTP/1.1 431"),
            "unexpected answer to {:?}: {response:?}",
            String::from_utf8_lossy(&request[..request.len().min(40)])
        );
        assert_ok(&server.exchange(GET));
    }
    // hyper answers a request line it cannot parse with a 400, not just a closed socket,
    // and an oversized head with a 431.
    assert!(server.exchange(b"GARBAGE\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(server.exchange(big_header.as_bytes()).starts_with("HTTP/1.1 431"));
}

#[test]
fn sigterm_answers_in_flight_requests_then_exits_0() {
    let mut server = Server::start(&["--drain-timeout", "30s"]);
    let mut stream = server.connect();
    // `Expect: 100-continue` makes hyper say when the handler has started reading the body,
    // so the request is surely in flight before the signal.
    stream
        .write_all(b"POST /alice HTTP/1.1\r\nHost: b\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    assert!(read_head(&mut stream).starts_with("HTTP/1.1 100 Continue"));
    stream.write_all(&[b'x'; 1000]).unwrap();

    server.signal(libc::SIGTERM);
    // The listener closes at once: new clients are refused while the upload drains.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(server.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.child.try_wait().unwrap().is_none(), "exited with a request in flight");

    stream.write_all(&[b'x'; 1000]).unwrap();
    assert_ok(&read_all(&mut stream));
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "stderr: {}", server.log_text());
}

#[test]
fn sigint_on_an_idle_server_exits_0() {
    let mut server = Server::start(&[]);
    // An idle keep-alive connection must not hold shutdown up.
    let mut stream = server.connect();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n").unwrap();
    assert!(read_head(&mut stream).starts_with("HTTP/1.1 200 OK"));
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn honours_the_port_environment_variable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port = port.to_string();
    let server = Server::spawn(&[], &[("PORT", &port)]);
    assert_eq!(server.addr, format!("0.0.0.0:{port}").parse().unwrap());
    let mut stream = TcpStream::connect(("127.0.0.1", server.addr.port())).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(GET).unwrap();
    assert_ok(&read_all(&mut stream));
}

/// Runs the binary expecting it to refuse to start; returns its stderr.
fn refuses_to_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_blackhole"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run blackhole");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "started anyway: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    stderr
}

#[test]
fn bad_input_gets_one_sentence_and_a_nonzero_exit() {
    let stderr = refuses_to_start(&["--listen", "not-an-address"], &[]);
    assert!(stderr.contains("--listen"), "{stderr}");

    let stderr =
        refuses_to_start(&["--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/x"], &[]);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot read the TLS certificate from /nonexistent/cert.pem"), "{stderr}");

    // A certificate given as the key: readable, but no key in it.
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cert.pem");
    let stderr = refuses_to_start(&["--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", cert], &[]);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("private key"), "{stderr}");

    let stderr = refuses_to_start(&[], &[("PORT", "eighty")]);
    assert!(stderr.contains("PORT"), "{stderr}");

    // Something already listens on this port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = refuses_to_start(&["--listen", &addr], &[]);
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
}

#[test]
fn serves_https_with_the_given_certificate() {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

    // A self-signed test certificate for localhost and 127.0.0.1, valid for a century; not a secret.
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cert.pem");
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/key.pem");
    let server = Server::start(&["--tls-cert", cert, "--tls-key", key]);
    assert!(server.log_text().contains("scheme=https"), "{}", server.log_text());

    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(cert).unwrap()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let response = runtime.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
        tls.write_all(b"POST /alice HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            .await
            .unwrap();
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    });
    assert_ok(&response);
    // A plain-HTTP client on the TLS port gets no answer, and the server goes on.
    let _ = server.exchange(GET);
}
