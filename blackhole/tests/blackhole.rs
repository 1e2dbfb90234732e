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

    /// Resident set size and its peak so far, in bytes, from /proc (so Linux only).
    #[cfg(target_os = "linux")]
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
#[cfg(target_os = "linux")] // RSS from /proc
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
fn a_keep_alive_connection_gets_the_header_timeout_again_after_each_answer() {
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "60s"]);
    let mut stream = server.connect();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for _ in 0..2 {
        stream.write_all(b"POST /alice HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert!(read_head(&mut stream).starts_with("HTTP/1.1 200 OK"));
        let mut body = [0u8; 3];
        stream.read_exact(&mut body).unwrap();
        assert_eq!(&body, b"ok\n");
    }
    // No next request: the wait for its head is cut long before the idle timeout (or the read's own).
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest)),
        Err(err) => assert!(
            !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the idle keep-alive connection was not cut: {err}"
        ),
    }
}

#[test]
fn cuts_off_a_stalled_body() {
    // No rate floor, which would answer 408 first: this is the idle cut, which closes without a word.
    let server = Server::start(&["--idle-timeout", "2s", "--header-timeout", "30s", "--body-min-rate", "0"]);
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
    // Every client has the same address: only the global cap is under test here.
    let server = Server::start(&["--max-connections", "100", "--max-connections-per-ip", "0"]);
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
    // Every timeout far past the wait below: only the stop itself can close the connection in time.
    let mut server = Server::start(&["--header-timeout", "60s", "--idle-timeout", "60s", "--drain-timeout", "60s"]);
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

// ---- the push stream (docs/stream.md) ----

/// One Server-Sent Event as a subscriber saw it.
#[derive(Debug, Clone)]
struct SseEvent {
    /// The `id:` field, when there was one.
    id: Option<String>,
    /// The `event:` field.
    kind: String,
    /// The `data:` field.
    data: String,
}

impl SseEvent {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {:?}", self.data))
    }
}

/// An open stream, read by a thread that decodes the chunked body and parses the events.
struct Subscriber {
    /// Every event so far.
    events: Arc<Mutex<Vec<SseEvent>>>,
    /// How many comment lines (keep-alives) arrived.
    comments: Arc<Mutex<usize>>,
    /// Set when the server ended the stream.
    ended: Arc<Mutex<bool>>,
    /// Set when the server ended it cleanly, with the last chunk, rather than dropping the connection.
    finished: Arc<Mutex<bool>>,
    /// The socket, to close it from the test.
    stream: TcpStream,
}

const TOKEN: &str = "test-stream-token";

/// A subscription request for `path`.
fn subscription(path: &str, token: Option<&str>, last_event_id: Option<&str>) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: blackhole\r\nAccept: text/event-stream\r\n");
    if let Some(token) = token {
        request += &format!("Authorization: Bearer {token}\r\n");
    }
    if let Some(id) = last_event_id {
        request += &format!("Last-Event-ID: {id}\r\n");
    }
    request + "\r\n"
}

impl Subscriber {
    /// Subscribes to `path` and waits for the `hello` event.
    fn open(server: &Server, path: &str, token: &str, last_event_id: Option<&str>) -> Subscriber {
        let mut stream = server.connect();
        stream.write_all(subscription(path, Some(token), last_event_id).as_bytes()).unwrap();
        Subscriber::read(stream)
    }

    /// Starts reading a stream whose subscription has been sent on `stream`, and waits for the `hello` event.
    fn read(mut stream: TcpStream) -> Subscriber {
        let head = read_head(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "subscription refused: {head:?}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-type: text/event-stream\r\n"), "{head}");
        assert!(lower.contains("cache-control: no-cache\r\n") && lower.contains("x-accel-buffering: no\r\n"), "{head}");
        assert!(lower.contains("transfer-encoding: chunked\r\n"), "{head}");
        let subscriber = Subscriber {
            events: Arc::default(),
            comments: Arc::default(),
            ended: Arc::default(),
            finished: Arc::default(),
            stream: stream.try_clone().unwrap(),
        };
        let (events, comments, ended, finished) = (
            subscriber.events.clone(),
            subscriber.comments.clone(),
            subscriber.ended.clone(),
            subscriber.finished.clone(),
        );
        stream.set_read_timeout(None).unwrap();
        std::thread::spawn(move || {
            let mut body = BufReader::new(stream);
            let mut text = Vec::new();
            let mut fields: Vec<(String, String)> = Vec::new();
            // Each chunk: a hex size line, that many bytes, CRLF. Events may span chunks.
            loop {
                let mut size = String::new();
                if body.read_line(&mut size).unwrap_or(0) == 0 {
                    break;
                }
                let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
                if size == 0 {
                    *finished.lock().unwrap() = true;
                    break;
                }
                let mut chunk = vec![0u8; size + 2];
                if body.read_exact(&mut chunk).is_err() {
                    break;
                }
                text.extend_from_slice(&chunk[..size]);
                while let Some(end) = text.iter().position(|b| *b == b'\n') {
                    let line = String::from_utf8(text.drain(..=end).collect()).expect("SSE is UTF-8");
                    let line = line.trim_end_matches('\n');
                    if line.is_empty() {
                        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                        if let Some(kind) = field("event") {
                            let event = SseEvent { id: field("id"), kind, data: field("data").unwrap_or_default() };
                            events.lock().unwrap().push(event);
                        }
                        fields.clear();
                    } else if line.starts_with(':') {
                        *comments.lock().unwrap() += 1;
                    } else if let Some((name, value)) = line.split_once(": ") {
                        fields.push((name.to_owned(), value.to_owned()));
                    }
                }
            }
            *ended.lock().unwrap() = true;
        });
        let hello = subscriber.wait_events(1).remove(0);
        assert_eq!(hello.kind, "hello", "the first event is not hello: {hello:?}");
        subscriber
    }

    /// Waits until at least `count` events have arrived and returns them all.
    fn wait_events(&self, count: usize) -> Vec<SseEvent> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.events.lock().unwrap().clone();
            if events.len() >= count {
                return events;
            }
            assert!(Instant::now() < deadline, "only {} of {count} events: {events:?}", events.len());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every event after `hello`.
    fn deliveries(&self) -> Vec<SseEvent> {
        self.events.lock().unwrap().iter().skip(1).cloned().collect()
    }

    fn hello(&self) -> serde_json::Value {
        self.events.lock().unwrap()[0].json()
    }

    fn wait_ended(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !*self.ended.lock().unwrap() {
            assert!(Instant::now() < deadline, "the stream did not end; events: {:?}", self.events.lock().unwrap());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// POSTs `body` to `path` with `headers` ("Name: value" lines) and returns the response.
fn post(server: &Server, path: &str, headers: &[&str], body: &[u8]) -> String {
    let mut request =
        format!("POST {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for header in headers {
        request += header;
        request += "\r\n";
    }
    let mut bytes = (request + "\r\n").into_bytes();
    bytes.extend_from_slice(body);
    server.exchange(&bytes)
}

fn decode_body(delivery: &SseEvent) -> Vec<u8> {
    use base64::Engine;
    let body = delivery.json()["body"].as_str().expect("body is a string").to_owned();
    base64::engine::general_purpose::STANDARD.decode(body).expect("body is standard base64")
}

fn streaming(extra: &[&str]) -> Server {
    Server::start(&[&["--stream-token", TOKEN], extra].concat())
}

#[test]
fn every_post_reaches_each_subscriber_of_its_path_byte_exact_with_its_headers() {
    let server = streaming(&[]);
    let (first, second) =
        (Subscriber::open(&server, "/alice", TOKEN, None), Subscriber::open(&server, "/alice", TOKEN, None));
    let other = Subscriber::open(&server, "/bob", TOKEN, None);
    // Every byte value, and more than one base64 frame's worth.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let headers = [
        "X-GitHub-Event: push",
        "X-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-GitHub-Hook-ID: 42",
        "X-Hub-Signature-256: sha256=abc",
        "Content-Type: application/json",
        "User-Agent: GitHub-Hookshot/044aadd",
        "Authorization: Bearer not-for-subscribers",
        "Cookie: not-for-subscribers",
    ];
    assert_ok(&post(&server, "/alice", &headers, &body));
    assert_ok(&post(&server, "/alice?x=1", &["X-GitHub-Event: ping"], b"{\"zen\":\"Keep it logically awesome.\"}"));
    assert_ok(&post(&server, "/bob", &["X-GitHub-Event: issues"], b"{}"));

    for subscriber in [&first, &second] {
        let events = subscriber.wait_events(3);
        let deliveries = &events[1..];
        assert_eq!(deliveries.len(), 2, "{deliveries:?}");
        assert!(deliveries.iter().all(|d| d.kind == "delivery" && d.id.is_some()));
        assert_eq!(decode_body(&deliveries[0]), body);
        let data = deliveries[0].json();
        let sent = &data["headers"];
        assert_eq!(sent["x-github-event"], "push");
        assert_eq!(sent["x-github-delivery"], "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        assert_eq!(sent["x-github-hook-id"], "42");
        assert_eq!(sent["x-hub-signature-256"], "sha256=abc");
        assert_eq!(sent["content-type"], "application/json");
        assert_eq!(sent["user-agent"], "GitHub-Hookshot/044aadd");
        assert_eq!(sent.as_object().unwrap().len(), 6, "only GitHub's headers are streamed: {sent}");
        assert!(data["received_at"].as_str().unwrap().ends_with('Z'), "{data}");
        assert_eq!(decode_body(&deliveries[1]), b"{\"zen\":\"Keep it logically awesome.\"}");
        assert_eq!(deliveries[1].json()["headers"]["x-github-event"], "ping");
    }
    assert_eq!(first.deliveries()[0].id, second.deliveries()[0].id);
    let bob = other.wait_events(2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(other.deliveries().len(), 1, "a POST to /alice reached /bob: {bob:?}");
    assert_eq!(decode_body(&bob[1]), b"{}");
}

/// A response with its `Date` header taken out, for comparing two answers.
fn without_date(response: &str) -> String {
    response.lines().filter(|line| !line.to_ascii_lowercase().starts_with("date:")).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_missing_or_wrong_token_gets_the_same_401_whatever_the_path() {
    let server = streaming(&[]);
    let _watched = Subscriber::open(&server, "/alice", TOKEN, None);
    let answers: Vec<String> = [
        subscription("/alice", None, None),
        subscription("/alice", Some("wrong"), None),
        subscription("/nobody-here", Some("wrong"), None),
        subscription("/nobody-here", None, None),
        subscription("/alice", Some(&format!("{TOKEN}x")), None),
    ]
    .iter()
    .map(|request| server.exchange(request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n").as_bytes()))
    .collect();
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{answer:?}");
        assert!(answer.to_ascii_lowercase().contains("www-authenticate: bearer\r\n"), "{answer:?}");
        assert_eq!(without_date(answer), without_date(&answers[0]), "401s differ by path or token");
    }
}

#[test]
fn every_token_in_the_list_is_accepted_so_one_can_be_rotated() {
    let server = Server::spawn(&["--listen", "127.0.0.1:0"], &[("BLACKHOLE_STREAM_TOKEN", "old-token, new-token")]);
    let old = Subscriber::open(&server, "/alice", "old-token", None);
    let new = Subscriber::open(&server, "/alice", "new-token", None);
    assert_ok(&post(&server, "/alice", &[], b"{}"));
    assert_eq!(old.wait_events(2)[1].kind, "delivery");
    assert_eq!(new.wait_events(2)[1].kind, "delivery");
    let refused = subscribe_once(&server, "/alice", Some("old-token,new-token"));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(!server.log_text().contains("old-token") && !server.log_text().contains("new-token"));
}

/// Sends a subscription on a connection of its own and returns the whole answer.
fn subscribe_once(server: &Server, path: &str, token: Option<&str>) -> String {
    let request = subscription(path, token, None).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    server.exchange(request.as_bytes())
}

#[test]
fn a_token_scoped_to_a_path_gets_the_same_401_elsewhere_as_no_token() {
    let list = "/alice=alice-token, /bob=bob-token";
    let server = Server::spawn(&["--listen", "127.0.0.1:0"], &[("BLACKHOLE_STREAM_TOKEN", list)]);
    let alice = Subscriber::open(&server, "/alice", "alice-token", None);
    let alice_ci = Subscriber::open(&server, "/alice/ci", "alice-token", None);
    let bob = Subscriber::open(&server, "/bob", "bob-token", None);

    let no_token = subscribe_once(&server, "/bob", None);
    assert!(no_token.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{no_token:?}");
    for (path, token) in [
        ("/bob", Some("alice-token")),
        ("/bob/x", Some("alice-token")),
        ("/alicex", Some("alice-token")),
        ("/", Some("alice-token")),
        ("/alice", Some("bob-token")),
        ("/bob", Some("wrong")),
        ("/alice", None),
    ] {
        let answer = subscribe_once(&server, path, token);
        assert_eq!(without_date(&answer), without_date(&no_token), "{token:?} on {path}: the 401 differs");
    }

    // A leak would arrive first: alice's POST is answered before bob's is sent.
    assert_ok(&post(&server, "/alice", &["X-GitHub-Delivery: for-alice"], b"{\"to\":\"alice\"}"));
    assert_ok(&post(&server, "/alice/ci", &["X-GitHub-Delivery: for-alice-ci"], b"{}"));
    assert_ok(&post(&server, "/bob", &["X-GitHub-Delivery: for-bob"], b"{\"to\":\"bob\"}"));
    let delivery =
        |subscriber: &Subscriber| subscriber.wait_events(2)[1].json()["headers"]["x-github-delivery"].clone();
    assert_eq!(delivery(&bob), "for-bob");
    assert_eq!(decode_body(&bob.wait_events(2)[1]), b"{\"to\":\"bob\"}");
    assert_eq!(delivery(&alice), "for-alice");
    assert_eq!(delivery(&alice_ci), "for-alice-ci");
    let log = server.log_text();
    assert!(!log.contains("alice-token") && !log.contains("bob-token"), "{log}");
}

#[test]
fn a_token_given_as_its_sha256_opens_its_path_and_the_digest_itself_does_not() {
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(b"bob-token").iter().map(|byte| format!("{byte:02x}")).collect();
    let server = Server::start(&["--stream-token", &format!("/bob=sha256:{hex}")]);
    let bob = Subscriber::open(&server, "/bob", "bob-token", None);
    assert_ok(&post(&server, "/bob", &[], b"{}"));
    assert_eq!(bob.wait_events(2)[1].kind, "delivery");
    for presented in [hex.clone(), format!("sha256:{hex}")] {
        let refused = subscribe_once(&server, "/bob", Some(&presented));
        assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    }
}

#[test]
fn mixing_tokens_for_every_path_with_scoped_ones_is_warned_about_once_at_start() {
    let mixed = Server::start(&["--stream-token", "every-path-token", "--stream-token", "/alice=a-token,/bob=b-token"]);
    let log = mixed.log_text();
    let warnings: Vec<&str> = log.lines().filter(|line| line.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("every path") && warnings[0].contains("/alice, /bob"), "{log}");
    assert!(!log.contains("every-path-token") && !log.contains("a-token"), "{log}");
    // The token for every path still opens every path: a one-person blackhole keeps working.
    drop(Subscriber::open(&mixed, "/bob", "every-path-token", None));

    let scoped = Server::start(&["--stream-token", "/alice=a-token", "--stream-token", "/bob=b-token"]);
    assert!(!scoped.log_text().contains("WARN"), "{}", scoped.log_text());
}

#[test]
fn without_a_stream_token_a_subscription_gets_a_plain_200_ok() {
    let server = Server::start(&[]);
    let request = subscription("/alice", Some(TOKEN), None).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    let response = server.exchange(request.as_bytes());
    assert_ok(&response);
    assert!(response.to_ascii_lowercase().contains("content-type: text/plain\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nok\n"), "{response}");
}

#[test]
fn a_resume_gets_exactly_the_missed_events_and_an_unknown_id_is_not_resumed() {
    let server = streaming(&[]);
    let first = Subscriber::open(&server, "/alice", TOKEN, None);
    assert_eq!(first.hello()["resumed"], false);
    let boot = first.hello()["boot"].as_str().unwrap().to_owned();
    assert_ok(&post(&server, "/alice", &[], b"one"));
    let seen = first.wait_events(2)[1].id.clone().unwrap();
    drop(first);
    for body in ["two", "three"] {
        assert_ok(&post(&server, "/alice", &[], body.as_bytes()));
    }
    assert_ok(&post(&server, "/bob", &[], b"not alice's"));

    let resumed = Subscriber::open(&server, "/alice", TOKEN, Some(&seen));
    assert_eq!(resumed.hello()["resumed"], true);
    let events = resumed.wait_events(3);
    std::thread::sleep(Duration::from_millis(200));
    let bodies: Vec<Vec<u8>> = resumed.deliveries().iter().map(decode_body).collect();
    assert_eq!(bodies, vec![b"two".to_vec(), b"three".to_vec()], "{events:?}");

    for unknown in [format!("{boot}-999"), "0badb007-1".to_owned(), "garbage".to_owned()] {
        let fresh = Subscriber::open(&server, "/alice", TOKEN, Some(&unknown));
        assert_eq!(fresh.hello()["resumed"], false, "{unknown}");
        std::thread::sleep(Duration::from_millis(100));
        assert!(fresh.deliveries().is_empty(), "a fresh stream replayed: {:?}", fresh.deliveries());
    }
}

#[test]
fn a_quiet_stream_gets_keep_alive_comments() {
    let server = streaming(&["--stream-keepalive", "200ms"]);
    let subscriber = Subscriber::open(&server, "/alice", TOKEN, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while *subscriber.comments.lock().unwrap() < 3 {
        assert!(Instant::now() < deadline, "no keep-alive comments");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stream_is_exempt_from_the_idle_cut() {
    // Keep-alives come less often than the idle cut: only the exemption keeps the stream open.
    let server = streaming(&["--idle-timeout", "1s", "--stream-keepalive", "60s"]);
    let subscriber = Subscriber::open(&server, "/alice", TOKEN, None);
    std::thread::sleep(Duration::from_millis(2500));
    assert_ok(&post(&server, "/alice", &[], b"late"));
    assert_eq!(decode_body(&subscriber.wait_events(2)[1]), b"late");
}

/// The server's boot id, from a short-lived subscription's `hello`.
fn boot_of(server: &Server) -> String {
    let probe = Subscriber::open(server, "/probe", TOKEN, None);
    probe.hello()["boot"].as_str().unwrap().to_owned()
}

#[test]
fn the_replay_buffer_is_bounded_by_count_bytes_and_age() {
    // Count: with room for two, the first of three is gone, so a resume from before it is not resumed.
    let server = streaming(&["--stream-buffer-count", "2"]);
    let boot = boot_of(&server);
    for body in ["1", "2", "3"] {
        assert_ok(&post(&server, "/a", &[], body.as_bytes()));
    }
    assert_eq!(Subscriber::open(&server, "/a", TOKEN, Some(&format!("{boot}-0"))).hello()["resumed"], false);
    let resumed = Subscriber::open(&server, "/a", TOKEN, Some(&format!("{boot}-1")));
    assert_eq!(resumed.hello()["resumed"], true);
    let bodies: Vec<Vec<u8>> = resumed.wait_events(3)[1..].iter().map(decode_body).collect();
    assert_eq!(bodies, vec![b"2".to_vec(), b"3".to_vec()]);

    // Bytes: 1500-byte bodies in 4000 bytes: two fit, a third evicts the first.
    let server = streaming(&["--stream-buffer-bytes", "4000"]);
    let boot = boot_of(&server);
    for _ in 0..3 {
        assert_ok(&post(&server, "/a", &[], &[b'x'; 1500]));
    }
    assert_eq!(Subscriber::open(&server, "/a", TOKEN, Some(&format!("{boot}-0"))).hello()["resumed"], false);
    let resumed = Subscriber::open(&server, "/a", TOKEN, Some(&format!("{boot}-1")));
    assert_eq!(resumed.hello()["resumed"], true);
    assert_eq!(resumed.wait_events(3).len(), 3);

    // Age: a delivery older than the age is gone, even with room to spare.
    let server = streaming(&["--stream-buffer-age", "2s"]);
    let boot = boot_of(&server);
    assert_ok(&post(&server, "/a", &[], b"old"));
    assert_eq!(Subscriber::open(&server, "/a", TOKEN, Some(&format!("{boot}-0"))).hello()["resumed"], true);
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(Subscriber::open(&server, "/a", TOKEN, Some(&format!("{boot}-0"))).hello()["resumed"], false);
}

#[test]
#[cfg(target_os = "linux")] // RSS from /proc
fn subscribers_that_never_read_cannot_grow_memory_past_the_buffer_total() {
    const TOTAL: u64 = 8 * 1024 * 1024;
    let server = streaming(&["--stream-buffer-total", "8MiB"]);
    // Twenty subscribers, each on its own path, that send their request and never read a byte of the stream.
    let stuck: Vec<TcpStream> = (0..20).map(|i| stalled_subscription(&server, &format!("/stuck-{i}"))).collect();
    let reader = Subscriber::open(&server, "/stuck-0", TOKEN, None);
    assert_ok(&post(&server, "/stuck-0", &[], b"warm-up"));
    let (baseline, _) = server.memory();

    let body = vec![b'x'; 1024 * 1024];
    for i in 0..200 {
        let response = post(&server, &format!("/stuck-{}", i % 20), &["X-GitHub-Event: push"], &body);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "POST {i} got {response:?}");
    }
    let (_, peak) = server.memory();
    let growth = peak.saturating_sub(baseline);
    eprintln!("baseline RSS {baseline} bytes, peak growth {growth} bytes over 200 MiB of POSTs");
    // Everything streaming holds is within the total; the rest is allocator slack. Were the events
    // the stuck streams were sending kept for them, that alone would be 20 MiB.
    assert!(growth < TOTAL + 4 * 1024 * 1024, "peak RSS grew by {growth} bytes over {baseline}");
    // A subscriber that does read still gets deliveries (some, or a gap when it fell behind).
    assert!(reader.wait_events(2).len() >= 2);
    drop(stuck);
}

#[test]
fn beyond_max_subscribers_a_subscription_gets_503_with_retry_after() {
    let server = streaming(&["--max-subscribers", "2"]);
    let _held = [Subscriber::open(&server, "/a", TOKEN, None), Subscriber::open(&server, "/b", TOKEN, None)];
    let request = subscription("/c", Some(TOKEN), None).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    let answer = server.exchange(request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: "), "{answer}");
    // GitHub's POSTs are still answered.
    assert_ok(&post(&server, "/c", &[], b"{}"));
}

#[test]
fn sigterm_ends_open_streams_at_once() {
    let mut server = streaming(&["--drain-timeout", "60s"]);
    let subscriber = Subscriber::open(&server, "/alice", TOKEN, None);
    server.signal(libc::SIGTERM);
    subscriber.wait_ended(Duration::from_secs(5));
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0), "{}", server.log_text());
}

#[test]
fn a_bad_stream_token_list_gets_one_sentence_with_no_token_and_exit_2() {
    let lists = [
        " , ",
        "/alice=s3cret-1, =s3cret-2",
        "/alice=s3cret-1, alice=s3cret-2",
        "s3cret-base64-padded==",
        "/alice=",
        "/alice=sha256:s3cret",
        "sha256:5e3c7e7",
    ];
    for list in lists {
        for (args, env) in [
            (vec!["--listen", "127.0.0.1:0", "--stream-token", list], vec![]),
            (vec!["--listen", "127.0.0.1:0"], vec![("BLACKHOLE_STREAM_TOKEN", list)]),
        ] {
            let output = Command::new(env!("CARGO_BIN_EXE_blackhole"))
                .args(args)
                .envs(env)
                .stdin(Stdio::null())
                .output()
                .expect("run blackhole");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{list:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{list:?}: {stderr}");
            assert!(stderr.starts_with("blackhole: --stream-token (BLACKHOLE_STREAM_TOKEN): "), "{stderr}");
            assert!(!stderr.contains("s3cret") && !stderr.contains("5e3c7e7"), "{list:?}: {stderr}");
        }
    }
}

// ---- `--redis`: instances sharing one stream (issue 20) ----

#[cfg(feature = "redis")]
mod redis;

// ---- abuse (issue 11, items 1 and 2) ----

#[test]
fn a_content_length_over_the_limit_gets_413_before_the_body_is_sent() {
    for args in [&[][..], &["--max-body", "1MiB"][..]] {
        let server = Server::start(args);
        let declared = if args.is_empty() { "2000000000" } else { "1048577" };
        let mut stream = server.connect();
        // Only the head: the answer must come without waiting for the body.
        let head = format!("POST /alice HTTP/1.1\r\nHost: b\r\nContent-Length: {declared}\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        let answer = read_all(&mut stream);
        assert!(answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"), "{args:?}: {answer:?}");
        assert!(answer.to_ascii_lowercase().contains("connection: close\r\n"), "{answer:?}");
    }
    // At the limit is fine.
    let server = Server::start(&["--max-body", "1MiB"]);
    assert_ok(&post(&server, "/alice", &[], &vec![b'x'; 1024 * 1024]));
}

#[test]
fn a_chunked_body_over_the_limit_gets_413_and_its_connection_is_closed() {
    let server = Server::start(&["--max-body", "1MiB", "--log-requests"]);
    let mut stream = server.connect();
    stream.write_all(b"POST /alice HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    // 256 MiB offered in 64 KiB chunks, far more than loopback's socket buffers can hold;
    // the writer stops when the server closes (or, if it stopped reading without closing, at the timeout).
    const OFFERED: usize = 256 * 1024 * 1024;
    let sent = std::thread::spawn(move || {
        let chunk = [b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < OFFERED {
            let ok = writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_ok()
                && writer.write_all(&chunk).is_ok()
                && writer.write_all(b"\r\n").is_ok();
            if !ok {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let answer = read_all(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"), "{answer:?}");
    let sent = sent.join().unwrap();
    assert!(sent < OFFERED, "the server took the whole body ({sent} bytes)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log_text().contains("status=413") {
        assert!(Instant::now() < deadline, "no request line with status 413: {}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ok(&server.exchange(GET));
}

#[test]
fn a_slow_body_flood_is_cut_at_the_body_timeout_and_a_normal_post_gets_through() {
    const FLOOD: usize = 200;
    // Fewer slots than flood connections, and no per-address cap: only the body deadline frees them.
    let server = Server::start(&["--body-timeout", "2s", "--max-connections", "100", "--max-connections-per-ip", "0"]);
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (closed, probe) = runtime.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let started = Instant::now();
        let flood: Vec<_> = (0..FLOOD)
            .map(|i| {
                tokio::spawn(async move {
                    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
                    // Half declare 2 GB (refused at once), half a size within the limit (cut at the deadline).
                    let declared = if i % 2 == 0 { 2_000_000_000 } else { 20_000_000 };
                    let head = format!("POST /flood HTTP/1.1\r\nHost: b\r\nContent-Length: {declared}\r\n\r\n");
                    stream.write_all(head.as_bytes()).await.ok()?;
                    // One byte every 500 ms for up to 60 s: the idle cut alone would never fire.
                    let mut buf = [0u8; 512];
                    for _ in 0..120 {
                        tokio::select! {
                            read = stream.read(&mut buf) => match read {
                                Ok(0) | Err(_) => return Some(started.elapsed()),
                                Ok(_) => {} // the 408, then the close
                            },
                            () = tokio::time::sleep(Duration::from_millis(500)) => {
                                if stream.write_all(b"x").await.is_err() {
                                    return Some(started.elapsed());
                                }
                            }
                        }
                    }
                    None
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let probe_started = Instant::now();
        let mut probe = tokio::net::TcpStream::connect(addr).await.unwrap();
        probe
            .write_all(b"POST /alice HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), probe.read_to_end(&mut answer))
            .await
            .expect("the probe hung")
            .unwrap();
        let probe = (String::from_utf8_lossy(&answer).into_owned(), probe_started.elapsed());
        let mut closed = Vec::new();
        for task in flood {
            closed.push(task.await.unwrap());
        }
        (closed, probe)
    });
    assert_ok(&probe.0);
    eprintln!("probe answered in {:?} under a flood of {FLOOD}", probe.1);
    let kept_open = closed.iter().filter(|closed| closed.is_none()).count();
    assert_eq!(kept_open, 0, "{kept_open} flood connections were never closed by the server");
    let last = closed.iter().flatten().max().unwrap();
    eprintln!("the last flood connection was closed after {last:?} (body timeout 2 s, 100 slots for {FLOOD})");
    assert_ok(&server.exchange(GET));
}

#[test]
#[cfg(target_os = "linux")] // all of 127.0.0.0/8 is loopback on Linux; macOS has only 127.0.0.1
fn connections_beyond_the_per_address_cap_are_closed_and_other_addresses_still_served() {
    let server = Server::start(&["--max-connections-per-ip", "3"]);
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let from = |ip: [u8; 4]| async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::from((ip, 0))).unwrap();
            socket.connect(addr).await.unwrap()
        };
        let ask = |mut stream: tokio::net::TcpStream| async move {
            let _ = stream.write_all(GET).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        };
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut stream = from([127, 0, 0, 1]).await;
            // A request and its answer make sure the server has counted this connection.
            stream.write_all(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n").await.unwrap();
            let mut buf = [0u8; 256];
            assert!(stream.read(&mut buf).await.unwrap() > 0);
            held.push(stream);
        }
        assert_eq!(ask(from([127, 0, 0, 1]).await).await, "", "a fourth connection from one address was served");
        assert!(ask(from([127, 0, 0, 2]).await).await.starts_with("HTTP/1.1 200 OK"), "another address was refused");
        held.pop();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(ask(from([127, 0, 0, 1]).await).await.starts_with("HTTP/1.1 200 OK"), "a freed slot was not reused");
    });
}

#[test]
fn a_second_signal_during_the_drain_exits_at_once_with_1() {
    let mut server = Server::start(&["--drain-timeout", "60s"]);
    let mut stream = server.connect();
    stream
        .write_all(b"POST /alice HTTP/1.1\r\nHost: b\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    assert!(read_head(&mut stream).starts_with("HTTP/1.1 100 Continue"));
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.child.try_wait().unwrap().is_none(), "exited with a request in flight");
    server.signal(libc::SIGINT);
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1), "{}", server.log_text());
    assert!(server.log_text().contains("second signal"), "{}", server.log_text());
}

// ---- memory and slow bodies (issue 24, items 1 and 5) ----

#[test]
fn a_path_over_1_kib_is_answered_200_and_not_streamed() {
    let server = streaming(&[]);
    let long = format!("/{}", "x".repeat(1024));
    let longest = &long[..1024];
    let short = Subscriber::open(&server, "/a", TOKEN, None);
    let at_the_bound = Subscriber::open(&server, longest, TOKEN, None);
    assert_ok(&post(&server, "/a", &[], b"first"));
    assert_ok(&post(&server, &long, &[], b"long"));
    assert_ok(&post(&server, longest, &[], b"at the bound"));
    assert_ok(&post(&server, "/a", &[], b"second"));
    assert_eq!(decode_body(&at_the_bound.wait_events(2)[1]), b"at the bound");
    // Event ids count every streamed POST across paths: the long path's took no number.
    let ids: Vec<String> = short.wait_events(3)[1..].iter().map(|e| e.id.clone().unwrap()).collect();
    let seq = |id: &str| id.rsplit_once('-').unwrap().1.parse::<u64>().unwrap();
    assert_eq!((seq(&ids[0]), seq(&ids[1])), (1, 3), "{ids:?}");

    // Subscribing to a path that long: 414 with the token, and without it the same 401 as anywhere.
    let ask = |token| {
        let request = subscription(&long, token, None).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
        server.exchange(request.as_bytes())
    };
    assert!(ask(Some(TOKEN)).starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{}", ask(Some(TOKEN)));
    assert!(ask(None).starts_with("HTTP/1.1 401 Unauthorized\r\n"));
}

#[test]
#[cfg(target_os = "linux")] // RSS from /proc
fn path_names_count_against_the_total_so_many_paths_evict_the_oldest_delivery() {
    let server = streaming(&["--stream-buffer-total", "1MiB"]);
    let boot = boot_of(&server);
    assert_ok(&post(&server, "/first", &[], b"{}"));
    assert_eq!(Subscriber::open(&server, "/first", TOKEN, Some(&format!("{boot}-0"))).hello()["resumed"], true);
    let (baseline, _) = server.memory();
    // 2,000 empty POSTs to distinct 1000-byte paths: about 3 MiB of names, counted once each.
    for i in 0..2000 {
        let path = format!("/{i:04}{}", "p".repeat(995));
        assert_ok(&post(&server, &path, &[], b""));
    }
    assert_eq!(
        Subscriber::open(&server, "/first", TOKEN, Some(&format!("{boot}-0"))).hello()["resumed"],
        false,
        "the names were not counted: the first delivery is still buffered"
    );
    let (_, peak) = server.memory();
    let growth = peak.saturating_sub(baseline);
    eprintln!("baseline RSS {baseline} bytes, peak growth {growth} bytes over 2,000 paths");
    // Uncounted, the names alone would be 2 MiB, stored twice 4 MiB.
    assert!(growth < 3 * 1024 * 1024, "peak RSS grew by {growth} bytes over {baseline} with a 1 MiB total");
}

/// Opens a subscription that reads nothing until [`Subscriber::read`] is called on it.
fn stalled_subscription(server: &Server, path: &str) -> TcpStream {
    let mut stream = server.connect();
    stream.write_all(subscription(path, Some(TOKEN), None).as_bytes()).unwrap();
    stream
}

#[test]
fn a_subscriber_that_has_not_taken_its_events_when_the_budget_needs_room_is_cut() {
    let server = streaming(&["--stream-buffer-total", "4MiB", "--stream-buffer-bytes", "4MiB"]);
    let stalled = stalled_subscription(&server, "/a");
    // 40 deliveries of 512 KiB, 27 MiB of base64 in all: far more than the socket buffers, the
    // budget and the replay buffer hold, so the stalled stream's events are evicted under it.
    let body = vec![b'y'; 512 * 1024];
    for i in 0..40 {
        let response = post(&server, "/a", &[], &body);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "POST {i} got {response:?}");
    }
    let subscriber = Subscriber::read(stalled);
    subscriber.wait_ended(Duration::from_secs(30));
    // Ended by the server's choice (the last chunk), not by its write-stall cut, which drops the connection.
    assert!(*subscriber.finished.lock().unwrap(), "the stream was dropped, not ended");
    let events = subscriber.events.lock().unwrap().clone();
    let deliveries = events.iter().filter(|e| e.kind == "delivery").count();
    assert!(deliveries < 40, "a stalled stream was given every delivery: {deliveries}");
    // What did arrive whole is byte-exact; a gap, when there is one, comes last.
    for (i, event) in events.iter().enumerate().skip(1) {
        match event.kind.as_str() {
            "delivery" => assert_eq!(decode_body(event), body),
            "gap" => assert_eq!(i, events.len() - 1, "{events:?}"),
            other => panic!("unexpected event {other}"),
        }
    }
}

#[test]
fn a_body_slower_than_the_floor_is_cut_with_408_after_the_grace() {
    // Nothing else would cut it within the hour.
    let server = Server::start(&[
        "--body-grace",
        "300ms",
        "--body-min-rate",
        "1KiB",
        "--body-timeout",
        "1h",
        "--idle-timeout",
        "1h",
        "--log-requests",
    ]);
    let mut stream = server.connect();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.write_all(b"POST /slow HTTP/1.1\r\nHost: b\r\nContent-Length: 100000\r\n\r\n0123456789").unwrap();
    let answer = read_all(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer:?}");
    assert!(answer.to_ascii_lowercase().contains("connection: close\r\n"), "{answer:?}");
    assert!(answer.ends_with("request body too slow\n"), "{answer:?}");
    // A body sent whole is not timed at all.
    assert_ok(&post(&server, "/fast", &[], &[b'x'; 100_000]));
}

/// Starts a POST declaring `declared` bytes, waits until the server reads its body, and sends `sent` of them.
fn start_slow_post(server: &Server, path: &str, declared: u64, sent: usize) -> TcpStream {
    let mut stream = server.connect();
    let head = format!("POST {path} HTTP/1.1\r\nHost: b\r\nContent-Length: {declared}\r\nExpect: 100-continue\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // hyper says `100 Continue` when the handler first asks for the body.
    assert!(read_head(&mut stream).starts_with("HTTP/1.1 100 Continue"));
    stream.write_all(&vec![b'x'; sent]).unwrap();
    stream
}

#[test]
fn when_every_slot_is_taken_the_slowest_body_gives_its_slot_to_a_new_client() {
    // Neither the floor nor any timeout would free a slot within the hour: only giving way does.
    let server = Server::start(&[
        "--max-connections",
        "4",
        "--max-connections-per-ip",
        "0",
        "--body-grace",
        "1h",
        "--body-timeout",
        "1h",
        "--idle-timeout",
        "1h",
    ]);
    let mut slow: Vec<TcpStream> = (0..4).map(|i| start_slow_post(&server, "/flood", 1_000_000, 1 + i * 100)).collect();
    // Each probe keeps its connection, and so its slot: the second needs a second body to give way.
    let mut probes = Vec::new();
    for _ in 0..2 {
        let mut probe = server.connect();
        probe.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        probe.write_all(b"POST /alice HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert!(read_head(&mut probe).starts_with("HTTP/1.1 200 OK\r\n"));
        probes.push(probe);
    }
    // The two that had sent least gave way, each with a 408; the others are still being read.
    let mut answers = Vec::new();
    for stream in &mut slow {
        stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        answers.push(read_all(stream));
    }
    assert!(answers[0].starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answers:?}");
    assert!(answers[1].starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answers:?}");
    assert_eq!(&answers[2..], ["", ""], "a faster body was cut");
}

#[test]
fn a_declared_huge_content_length_does_not_keep_another_post_from_streaming() {
    // Four bodies declaring 32 MiB each, the whole default budget twice over, held open past the test.
    let server = streaming(&["--body-grace", "60s"]);
    let _held: Vec<TcpStream> = (0..4).map(|_| start_slow_post(&server, "/flood", 32 * 1024 * 1024, 1)).collect();
    let subscriber = Subscriber::open(&server, "/alice", TOKEN, None);
    assert_ok(&post(&server, "/alice", &["X-GitHub-Event: push"], b"{\"genuine\":true}"));
    assert_eq!(decode_body(&subscriber.wait_events(2)[1]), b"{\"genuine\":true}");
}
